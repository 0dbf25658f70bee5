"""The build job's stages, each a named PTransform; the work itself is in `pipeline/`.

DoFns here only call `pipeline` functions, count (Beam metrics, namespace `build`) and route
failures: a record that cannot be written leaves as a `Reject` on the `rejects` output.
"""

from __future__ import annotations

import logging
import time
from typing import Optional

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from pipeline import annotations, images, metadata, sharding, storage
from pipeline.example import encode_example
from pipeline.records import (ImageRecord, MISSING_FILE, PATH_ESCAPES_ROOT, Reject,
                              UNREADABLE_FILE)
from schemas import layout

NAMESPACE = "build"
REJECTS = "rejects"
_LOG_EVERY = 1000


def _count_reject(reason: str) -> None:
    Metrics.counter(NAMESPACE, f"rejected_{reason}").inc()


class _JoinAnnotationsFn(beam.DoFn):
    """(split, annotation path) -> one ImageRecord per annotated image, or Rejects."""

    def __init__(self, label_map: annotations.LabelMap):
        self._label_map = label_map
        self._read = Metrics.counter(NAMESPACE, "records_read")

    def process(self, split_and_path):
        split, path = split_and_path
        data = annotations.parse_annotation_file(storage.read_bytes(path), path)
        for item in annotations.join_annotations(data, split, path, self._label_map):
            self._read.inc()
            if isinstance(item, Reject):
                _count_reject(item.reason)
                yield beam.pvalue.TaggedOutput(REJECTS, item)
            else:
                yield item


class ReadAnnotations(beam.PTransform):
    """Parses each split's annotation JSON on a worker and joins images, annotations and
    categories by id. Returns (records, rejects)."""

    def __init__(self, label_map: annotations.LabelMap):
        super().__init__()
        self._label_map = label_map

    def expand(self, split_files):
        joined = split_files | "Join" >> beam.ParDo(_JoinAnnotationsFn(self._label_map)) \
            .with_outputs(REJECTS, main="records")
        # One annotation file fans out to millions of records on one worker; without this
        # break, fusion would keep all image work on that worker.
        records = joined.records | "Redistribute" >> beam.Reshuffle()
        return records, joined[REJECTS]


class _EncodeFn(beam.DoFn):
    """ImageRecord -> SpilledExample: reads the image, normalises it, spills the Example."""

    def __init__(self, images_roots: dict[str, str], spill_dir: str, max_side: Optional[int],
                 max_pixels: int, jpeg_quality: int):
        self._images_roots = images_roots
        self._spill_dir = spill_dir
        self._options = dict(max_side=max_side, max_pixels=max_pixels, jpeg_quality=jpeg_quality)
        self._written = Metrics.counter(NAMESPACE, "records_encoded")
        self._bytes = Metrics.counter(NAMESPACE, "bytes_encoded")
        self._reencoded = Metrics.counter(NAMESPACE, "images_reencoded")
        self._spill = None
        self._done = 0
        self._start = None

    def start_bundle(self):
        self._spill = sharding.SpillWriter(self._spill_dir)

    def finish_bundle(self):
        self._spill.close()

    def _reject(self, record: ImageRecord, reason: str, detail: str):
        _count_reject(reason)
        return beam.pvalue.TaggedOutput(REJECTS, Reject.for_record(record, reason, detail))

    def process(self, record: ImageRecord):
        try:
            path = storage.resolve_image_path(self._images_roots[record.split], record.file_name)
        except storage.PathEscapesRoot as e:
            yield self._reject(record, PATH_ESCAPES_ROOT, str(e))
            return
        try:
            data = storage.read_bytes(path)
        except FileNotFoundError:
            yield self._reject(record, MISSING_FILE, f"{path}: no such file")
            return
        except (OSError, beam.io.filesystem.BeamIOError) as e:
            yield self._reject(record, UNREADABLE_FILE, f"{path}: {e}")
            return
        try:
            image = images.normalize_image(data, **self._options)
        except images.ImageError as e:
            yield self._reject(record, e.reason, f"{path}: {e.detail}")
            return
        example = encode_example(record, image)
        spill_path, offset = self._spill.append(example)
        self._written.inc()
        self._bytes.inc(len(example))
        if image.reencoded:
            self._reencoded.inc()
        self._log_progress()
        yield sharding.SpilledExample(split=record.split, image_id=record.image_id,
                                      label=record.label, spill_path=spill_path, offset=offset,
                                      length=len(example))

    def _log_progress(self):
        self._done += 1
        if self._start is None:
            self._start = time.monotonic()
        elif self._done % _LOG_EVERY == 0:
            rate = self._done / max(time.monotonic() - self._start, 1e-9)
            logging.info("encoded %d images in this worker (%.0f img/s)", self._done, rate)


class EncodeImages(beam.PTransform):
    """ImageRecords -> (SpilledExamples, rejects)."""

    def __init__(self, config, spill_dir: str):
        super().__init__()
        self._fn = _EncodeFn(dict(config.images_roots), spill_dir, config.max_side,
                             config.max_pixels, config.jpeg_quality)

    def expand(self, records):
        encoded = records | "Encode" >> beam.ParDo(self._fn).with_outputs(REJECTS, main="examples")
        return encoded.examples, encoded[REJECTS]


def _write_shard(shard_and_refs, output_dir: str, dataset_name: str) -> metadata.WrittenShard:
    (split, index, num_shards), refs = shard_and_refs
    records = sharding.read_spilled(refs)
    name = layout.shard_name(dataset_name, split, index, num_shards)
    sharding.write_tfrecord_file(records, storage.join(output_dir, name))
    Metrics.counter(NAMESPACE, "records_written").inc(len(records))
    Metrics.counter(NAMESPACE, "shards_written").inc()
    return metadata.WrittenShard(split, index, num_shards, name, len(records))


class WriteShards(beam.PTransform):
    """SpilledExamples -> WrittenShards. Plans each split's shards from its records' hashes and
    sizes, then groups references (not bytes) by shard; each shard is written by one worker in
    a fixed order (see pipeline/sharding.py)."""

    def __init__(self, output_dir: str, dataset_name: str, target_shard_bytes: int,
                 num_shards: Optional[int]):
        super().__init__()
        self._output_dir = output_dir
        self._dataset_name = dataset_name
        self._target = target_shard_bytes
        self._num_shards = num_shards

    def expand(self, examples):
        target, fixed = self._target, self._num_shards
        plans = (
            examples
            | "KeyAndBytes" >> beam.Map(
                lambda e: (e.split, (sharding.sort_key(e.image_id), e.length)))
            | "GatherPerSplit" >> beam.GroupByKey()
            | "PlanShards" >> beam.MapTuple(lambda split, pairs: (split, sharding.plan_shards(
                [k for k, _ in pairs], sum(b for _, b in pairs), target, fixed))))
        return (
            examples
            | "AssignShard" >> beam.Map(
                lambda e, plans: ((e.split, plans[e.split].shard_of(e.image_id),
                                   plans[e.split].num_shards), e),
                plans=beam.pvalue.AsDict(plans))
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.Map(_write_shard, self._output_dir, self._dataset_name))


class _LabelCountsFn(beam.CombineFn):
    def __init__(self, num_classes: int):
        super().__init__()
        self._num_classes = num_classes

    def create_accumulator(self):
        return np.zeros(self._num_classes, np.int64)

    def add_input(self, counts, label):
        counts[label] += 1
        return counts

    def merge_accumulators(self, accumulators):
        return np.sum(list(accumulators), axis=0, dtype=np.int64)

    def extract_output(self, counts):
        return counts


class CountLabels(beam.PTransform):
    """SpilledExamples -> one vector of train-record counts per class (written records only)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self._num_classes = num_classes

    def expand(self, examples):
        return (examples
                | "TrainOnly" >> beam.Filter(lambda e: e.split == "train")
                | "Labels" >> beam.Map(lambda e: e.label)
                | "Count" >> beam.CombineGlobally(_LabelCountsFn(self._num_classes)))


def _write_rejects(rejects: list, path: str) -> dict:
    storage.write_bytes_atomic(path, metadata.rejects_jsonl(rejects).encode("utf-8"))
    return metadata.count_rejects(rejects)


class WriteRejects(beam.PTransform):
    """Rejects -> rejects.jsonl (one line each, fixed order); returns {split: {reason: n}}."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def expand(self, rejects):
        return (rejects
                | "Gather" >> beam.combiners.ToList()
                | "Write" >> beam.Map(_write_rejects, self._path))


def _finish(_, shards, label_counts, rejected, *, config, plan):
    """Runs once, after everything else: checks the build, writes metadata, removes spills."""
    shards = list(shards)
    metadata.check_build(config.splits, shards, rejected, config.max_reject_fraction)
    splits = metadata.split_infos(config.splits, shards, rejected, plan.annotation_files)
    metadata.write_build_outputs(
        config.output_dir, dataset_name=config.dataset_name, label_map=plan.label_map,
        splits=splits, label_counts=label_counts, class_weighting=config.class_weighting,
        beta=config.beta, options=config.to_dict())
    storage.delete_tree(plan.spill_dir)


class WriteMetadata(beam.PTransform):
    """Applied to the pipeline root: waits for shards, counts and rejects (side inputs), then
    writes the label files and `build_info.json` last, or fails the job (BuildFailed)."""

    def __init__(self, config, plan, shards, label_counts, rejected):
        super().__init__()
        self._config, self._plan = config, plan
        self._shards, self._label_counts, self._rejected = shards, label_counts, rejected

    def expand(self, root):
        return (root
                | "Once" >> beam.Create([None])
                | "Finish" >> beam.Map(
                    _finish, beam.pvalue.AsList(self._shards),
                    beam.pvalue.AsSingleton(self._label_counts),
                    beam.pvalue.AsSingleton(self._rejected), config=self._config, plan=self._plan))

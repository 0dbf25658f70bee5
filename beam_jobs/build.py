"""The build job: raw iNaturalist images + annotation JSON -> sharded TFRecords + statistics.

Locally, on the bundled sample (generated on first use):
    python -m beam_jobs.build --runner DirectRunner
On real data, both cores:
    python -m beam_jobs.build --runner DirectRunner \
        --direct_running_mode multi_processing --direct_num_workers 2 \
        --annotations train=/data/inat2021/train.json --annotations val=/data/inat2021/val.json \
        --images_root /data/inat2021 --output_dir /data/inat2021_tfrecords --max_side 400
On Dataflow: the same flags with gs:// paths, plus
    --runner DataflowRunner --project P --region R --temp_location gs://B/tmp --setup_file ./setup.py
The output folder's contract is in schemas/layout.py and the README.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Optional, Sequence

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs import transforms
from beam_jobs.config import BuildConfig, parse_args
from pipeline import annotations, metadata, storage
from pipeline.plan import BuildPlan, plan_build
from schemas import layout


def build_pipeline(p: beam.Pipeline, config: BuildConfig, plan: BuildPlan) -> None:
    """Adds the build's stages to `p`; reads top-down as the job does."""
    split_files = p | "ListSplits" >> beam.Create(list(config.annotations))
    records, bad_annotations = split_files | "ReadAnnotations" >> transforms.ReadAnnotations(
        plan.label_map)
    examples, bad_images = records | "EncodeImages" >> transforms.EncodeImages(
        config, plan.spill_dir)
    shards = examples | "WriteShards" >> transforms.WriteShards(
        config.output_dir, config.dataset_name, config.target_shard_bytes, config.num_shards)
    label_counts = examples | "CountLabels" >> transforms.CountLabels(plan.label_map.num_classes)
    rejected = ((bad_annotations, bad_images) | "AllRejects" >> beam.Flatten()
                | "WriteRejects" >> transforms.WriteRejects(
                    storage.join(config.output_dir, layout.REJECTS)))
    _ = p | "WriteMetadata" >> transforms.WriteMetadata(config, plan, shards, label_counts,
                                                        rejected)


def _counters(result) -> dict[str, int]:
    query = result.metrics().query(MetricsFilter().with_namespace(transforms.NAMESPACE))
    return {c.key.metric.name: c.committed for c in query["counters"]}


def run(config: BuildConfig, beam_args: Sequence[str]) -> layout.BuildInfo:
    """Runs the build to completion; returns the written build info."""
    plan = plan_build(config.annotations, config.output_dir)
    storage.ensure_dir(config.output_dir)
    info_path = storage.join(config.output_dir, layout.BUILD_INFO)
    if storage.exists(info_path):  # the folder is incomplete until the new build_info is written
        storage.delete_tree(info_path)
    start = time.monotonic()
    options = PipelineOptions(list(beam_args), save_main_session=False)
    try:
        with beam.Pipeline(options=options) as p:
            build_pipeline(p, config, plan)
    except Exception as e:  # pylint: disable=broad-except; re-raised unless it is ours
        failure = metadata.BuildFailed.from_runner_error(e)
        if failure is None:
            raise
        raise failure from e
    elapsed = time.monotonic() - start
    info = layout.BuildInfo.from_json(storage.read_bytes(info_path).decode("utf-8"))
    _remove_stale_shards(config, info)
    counters = _counters(p.result)
    written = counters.get("records_written", 0)
    rejected = {k[len("rejected_"):]: v for k, v in counters.items() if k.startswith("rejected_")}
    logging.info("built %s in %.1f s: records per split %s, %d rejected %s, %d classes, "
                 "%.1f MiB encoded, %.0f images/s", config.output_dir, elapsed,
                 {s: i.num_records for s, i in info.splits.items()}, sum(rejected.values()),
                 rejected, info.num_classes, counters.get("bytes_encoded", 0) / 2**20,
                 written / elapsed)
    return info


def _remove_stale_shards(config: BuildConfig, info: layout.BuildInfo) -> None:
    """Shards of an earlier build into the same folder that this build did not rewrite."""
    current = {s.file for split in info.splits.values() for s in split.shards}
    pattern = storage.join(config.output_dir, f"{config.dataset_name}-*.tfrecord-*-of-*")
    stale = [m.path for m in storage.match(pattern) if m.path.rsplit("/", 1)[-1] not in current]
    if stale:
        logging.info("removing %d shards of an earlier build", len(stale))
        storage.delete_files(stale)


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        force=True)
    config, beam_args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        info = run(config, beam_args)
    except annotations.AnnotationError as e:
        logging.error("%s", e)
        return 2
    except metadata.BuildFailed as e:
        logging.error("build failed: %s", e)
        return 1
    logging.info("build complete: %s (%s records)", storage.join(config.output_dir, layout.BUILD_INFO),
                 ", ".join(f"{s}: {i.num_records}" for s, i in info.splits.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

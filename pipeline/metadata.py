"""The statistics and metadata files of a finished build, `build_info.json` last.

Plain functions: `beam_jobs.transforms.WriteMetadata` calls them once, after every shard and
the rejects file are written.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from pipeline import storage, weights
from pipeline.records import Reject
from schemas import features, layout


class BuildFailed(RuntimeError):
    """The build finished writing but its output must not be marked complete."""

    @classmethod
    def from_runner_error(cls, error: Exception) -> "BuildFailed | None":
        """The BuildFailed inside a runner's error, if any. Raised in a worker, it reaches the
        driver as the runner's own exception (a RuntimeError holding the worker's traceback on
        the multi-processing runner), so it is recognised by its name in that text."""
        marker = f"{cls.__module__}.{cls.__qualname__}: "
        text = str(error)
        if isinstance(error, cls):
            message = text
        elif marker in text:
            message = text.rsplit(marker, 1)[1]
        else:
            return None
        for end in ("\n", " [while running"):  # the traceback's rest, Beam's stage suffix
            message = message.split(end, 1)[0]
        return cls(message.replace("\\'", "'"))


@dataclasses.dataclass(frozen=True)
class WrittenShard:
    split: str
    index: int
    num_shards: int
    file: str  # file name in the output folder
    num_records: int


def count_rejects(rejects: Iterable[Reject]) -> dict[str, dict[str, int]]:
    """{split: {reason: count}}, sorted, for build_info.json and the summary."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for reject in rejects:
        counts[reject.split][reject.reason] += 1
    return {split: dict(sorted(c.items())) for split, c in sorted(counts.items())}


def rejects_jsonl(rejects: Iterable[Reject]) -> str:
    """One JSON object per line, in a fixed order so reruns give the same file."""
    ordered = sorted(rejects, key=lambda r: (r.split, r.image_id or "", r.reason, r.detail))
    return "".join(r.to_json() + "\n" for r in ordered)


def check_build(splits: Sequence[str], shards: Sequence[WrittenShard],
                rejected: Mapping[str, Mapping[str, int]], max_reject_fraction: float) -> None:
    """Raises BuildFailed for an empty split or too many rejects; the message says where to look."""
    written = collections.Counter()
    for shard in shards:
        written[shard.split] += shard.num_records
    for split in splits:
        if written[split] == 0:
            raise BuildFailed(f"split {split!r}: no record was written "
                              f"({sum(rejected.get(split, {}).values())} rejected; see "
                              f"{layout.REJECTS})")
    total_rejected = sum(sum(r.values()) for r in rejected.values())
    total = total_rejected + sum(written.values())
    if total_rejected > max_reject_fraction * total:
        raise BuildFailed(f"{total_rejected} of {total} inputs were rejected "
                          f"({total_rejected / total:.2%} > --max_reject_fraction "
                          f"{max_reject_fraction:.2%}); reasons: {dict(rejected)}; see "
                          f"{layout.REJECTS}")


def split_infos(splits: Sequence[str], shards: Sequence[WrittenShard],
                rejected: Mapping[str, Mapping[str, int]],
                annotation_files: Mapping[str, tuple[str, str]]) -> dict[str, layout.SplitInfo]:
    infos = {}
    for split in splits:
        mine = sorted((s for s in shards if s.split == split), key=lambda s: s.index)
        path, sha256 = annotation_files[split]
        infos[split] = layout.SplitInfo(
            num_records=sum(s.num_records for s in mine),
            shards=tuple(layout.ShardInfo(s.file, s.num_records) for s in mine),
            rejected=dict(rejected.get(split, {})), annotation_file=path,
            annotation_sha256=sha256)
    return infos


def write_build_outputs(output_dir: str, *, dataset_name: str, label_map,
                        splits: dict[str, layout.SplitInfo], label_counts: np.ndarray,
                        class_weighting: str, beta: float, options: dict[str, Any]) -> layout.BuildInfo:
    """Writes counts, weights, label files and the resolved config, then build_info.json last."""
    class_weights = weights.class_weights(label_counts, class_weighting, beta)
    files = {"label_counts": layout.LABEL_COUNTS, "class_weights": layout.CLASS_WEIGHTS,
             "labels": layout.LABELS, "label_map": layout.LABEL_MAP, "rejects": layout.REJECTS,
             "build_config": layout.BUILD_CONFIG}
    contents = {
        layout.LABEL_COUNTS: weights.counts_to_text(label_counts),
        layout.CLASS_WEIGHTS: weights.weights_to_text(class_weights),
        layout.LABELS: "".join(name + "\n" for name in label_map.names()),
        layout.LABEL_MAP: json.dumps(label_map.rows(), indent=1, ensure_ascii=False),
        layout.BUILD_CONFIG: json.dumps(options, indent=2, sort_keys=True),
    }
    for name, text in contents.items():
        storage.write_bytes_atomic(storage.join(output_dir, name), text.encode("utf-8"))
    info = layout.BuildInfo(
        schema_version=features.SCHEMA_VERSION, dataset_name=dataset_name,
        num_classes=label_map.num_classes, splits=splits,
        supercategories=tuple(label_map.supercategories),
        class_weighting=weights.weighting_description(class_weighting, beta),
        files=files, options=options)
    storage.write_bytes_atomic(storage.join(output_dir, layout.BUILD_INFO),
                               info.to_json().encode("utf-8"))
    logging.info("wrote %s: %d classes, splits %s", layout.BUILD_INFO, info.num_classes,
                 {name: s.num_records for name, s in splits.items()})
    return info

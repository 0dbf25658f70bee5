"""What an output folder of the build job holds, and the structure of `build_info.json`.

Written by `beam_jobs.build`, read by `train` (and anyone else). `build_info.json` is written
last and atomically: its presence means the folder is complete.

The names `dataset_info.json`, `features.json` and `metadata.json` are left free on purpose:
they belong to TensorFlow Datasets, whose `builder_from_directory` should one day load this
folder as is.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

BUILD_INFO = "build_info.json"
LABEL_COUNTS = "label_counts.txt"  # one int per line, class-index order, train records written
CLASS_WEIGHTS = "class_weights.txt"  # one float per line, class-index order
LABELS = "labels.txt"  # one class name per line, class-index order
LABEL_MAP = "label_map.json"  # list of {index, category_id, name, supercategory, ranks...}
REJECTS = "rejects.jsonl"  # one JSON object per input not written
BUILD_CONFIG = "build_config.json"  # the resolved build options

# Where `python -m beam_jobs.build` with no flags writes the bundled sample's build, and where
# the trainer looks by default (relative to the working directory; outputs/ is git-ignored).
SAMPLE_BUILD_DIR = "outputs/sample_tfrecords"

DATASET_NAME_RE = re.compile(r"^[a-zA-Z]\w*$")


def shard_name(dataset_name: str, split: str, index: int, num_shards: int) -> str:
    """TFDS-style shard file name, e.g. `inat2021-train.tfrecord-00003-of-00128`."""
    return f"{dataset_name}-{split}.tfrecord-{index:05d}-of-{num_shards:05d}"


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    file: str  # file name, relative to the output folder
    num_records: int


@dataclasses.dataclass(frozen=True)
class SplitInfo:
    num_records: int  # records written, == sum of the shards' counts
    shards: tuple[ShardInfo, ...]
    rejected: dict[str, int]  # reject reason code -> count
    annotation_file: str
    annotation_sha256: str


@dataclasses.dataclass(frozen=True)
class BuildInfo:
    schema_version: int
    dataset_name: str
    num_classes: int
    splits: dict[str, SplitInfo]
    supercategories: tuple[str, ...]  # dense supercategory index -> name
    class_weighting: dict[str, Any]  # {"scheme", "formula", "beta"?}
    files: dict[str, str]  # role -> file name in the folder (label_counts, class_weights, ...)
    options: dict[str, Any]  # the resolved build options

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "BuildInfo":
        raw = json.loads(text)
        splits = {
            name: SplitInfo(**{**split, "shards": tuple(ShardInfo(**s) for s in split["shards"])})
            for name, split in raw["splits"].items()
        }
        return cls(**{**raw, "splits": splits,
                       "supercategories": tuple(raw["supercategories"])})

"""What the driver checks and decides before the pipeline runs.

Reads each annotation file once (through FileSystems, so gs:// works) to fail fast, with the
file named, on a missing or malformed file or an unlabelled split; derives the label map that
all splits share; and records each file's sha256. Only this small plan enters the job graph:
the records themselves are read again, inside the pipeline, by `beam_jobs.transforms`.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from typing import Sequence

from pipeline import annotations, storage


@dataclasses.dataclass(frozen=True)
class BuildPlan:
    label_map: annotations.LabelMap
    annotation_files: dict[str, tuple[str, str]]  # split -> (path, sha256)
    spill_dir: str  # temporary folder of spilled Examples, removed when the build completes


def plan_build(split_paths: Sequence[tuple[str, str]], output_dir: str) -> BuildPlan:
    """Raises AnnotationError (naming the file) for anything that makes the build pointless."""
    categories, files = {}, {}
    for split, path in split_paths:
        if not storage.exists(path):
            raise annotations.AnnotationError(f"{path}: annotation file not found")
        raw = storage.read_bytes(path)
        data = annotations.parse_annotation_file(raw, path)
        annotations.check_labelled(data, path)
        categories[path] = data["categories"]
        files[split] = (path, storage.sha256_of(raw))
        logging.info("split %s: %s (%d images, %d annotations)", split, path,
                     len(data["images"]), len(data["annotations"]))
    label_map = annotations.build_label_map(categories)
    spill_dir = storage.join(output_dir, f"_tmp_build-{uuid.uuid4().hex[:12]}")
    return BuildPlan(label_map=label_map, annotation_files=files, spill_dir=spill_dir)

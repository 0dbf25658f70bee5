"""Tiny, complete build-job output folders for tests: shards, statistics and build_info.json.

`write_fixture_build(tmp_dir)` writes what `beam_jobs.build` writes (see the output contract in
`schemas/layout.py`), only small and fast: each class is a distinct colour plus noise, so a tiny
model can learn it in a few steps. A helper module, not a test module; use it from tests as

    from tests import shardfixtures
    info = shardfixtures.write_fixture_build(tmp_path, num_classes=4)

`make_jpeg`, `make_record` and `write_shard` are exposed for tests that need a hand-made shard
(an out-of-range label, an extra split, ...).
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import os
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

from pipeline import annotations, metadata
from schemas import features, layout


def class_colour(label: int, num_classes: int) -> tuple[int, int, int]:
    """An RGB colour per class, hues evenly spaced so that classes are easy to tell apart."""
    r, g, b = colorsys.hsv_to_rgb(label / max(num_classes, 1), 0.8, 0.9)
    return int(r * 255), int(g * 255), int(b * 255)


def make_jpeg(rng: np.random.Generator, colour: tuple[int, int, int], size: tuple[int, int],
              *, noise_std: float = 25.0, quality: int = 90) -> bytes:
    """JPEG bytes of a `size` = (width, height) image: `colour` plus Gaussian noise."""
    width, height = size
    pixels = np.asarray(colour, np.float32) + rng.normal(0.0, noise_std, (height, width, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def make_record(image: bytes, size: tuple[int, int], label: int, label_text: str,
                supercategory: int, source_id: str) -> dict[str, Any]:
    """{field name: value} for `features.to_example`; `size` is the JPEG's (width, height)."""
    return {
        "image": image,
        "format": features.IMAGE_FORMAT,
        "height": size[1],
        "width": size[0],
        "label": label,
        "label_text": label_text,
        "supercategory": supercategory,
        "source_id": source_id,
    }


def write_shard(path: str, records: Sequence[Mapping[str, Any]]) -> None:
    """Writes `records` ({field name: value}) as serialized Examples to one TFRecord file."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(features.to_example(record))


def _per_class(value: int | Sequence[int], num_classes: int, what: str) -> list[int]:
    counts = [value] * num_classes if isinstance(value, int) else list(value)
    if len(counts) != num_classes or any(c < 0 for c in counts):
        raise ValueError(f"{what} must be an int or {num_classes} non-negative ints, got {value!r}")
    return counts


def write_fixture_build(
    out_dir: str | os.PathLike,
    *,
    num_classes: int = 4,
    train_per_class: int | Sequence[int] | None = None,
    val_per_class: int | Sequence[int] = 3,
    image_size: tuple[int, int] = (64, 48),
    num_shards: int = 2,
    dataset_name: str = "fixture",
    seed: int = 0,
    jpeg_quality: int = 90,
) -> layout.BuildInfo:
    """Writes a complete build output folder to `out_dir` and returns its BuildInfo.

    Args:
      train_per_class: records per class in the train split, an int or one int per class;
        default a long tail, `max(3, 16 // (index + 1))` (16, 8, 5, 4 for four classes).
      val_per_class: the same for the val split. A split with no records is left out.
      image_size: (width, height) of every JPEG.
      num_shards: shards per split, capped at the split's record count (as the build job does).

    Records are shuffled (seeded) and dealt round-robin to the shards, so no shard is
    class-sorted. Source ids are `{split}-{n}`, unique across the folder.
    """
    out_dir = os.fspath(out_dir)
    if not layout.DATASET_NAME_RE.match(dataset_name):
        raise ValueError(f"dataset_name {dataset_name!r} must match {layout.DATASET_NAME_RE.pattern}")
    if train_per_class is None:
        train_per_class = [max(3, 16 // (i + 1)) for i in range(num_classes)]
    per_split = {
        "train": _per_class(train_per_class, num_classes, "train_per_class"),
        "val": _per_class(val_per_class, num_classes, "val_per_class"),
    }
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    supercategories = ("Animalia", "Plantae")
    names = [f"Species {i}" for i in range(num_classes)]
    category_ids = [1000 + 7 * i for i in range(num_classes)]  # sparse, like iNat's ids

    splits: dict[str, layout.SplitInfo] = {}
    for split, counts in per_split.items():
        labels = np.repeat(np.arange(num_classes), counts)
        if labels.size == 0:
            continue
        rng.shuffle(labels)
        records = [
            make_record(make_jpeg(rng, class_colour(int(label), num_classes), image_size,
                                  quality=jpeg_quality),
                        image_size, int(label), names[label], int(label) % len(supercategories),
                        f"{split}-{n}")
            for n, label in enumerate(labels)
        ]
        shard_count = min(num_shards, len(records))
        shards = []
        for index in range(shard_count):
            file_name = layout.shard_name(dataset_name, split, index, shard_count)
            shard_records = records[index::shard_count]
            write_shard(os.path.join(out_dir, file_name), shard_records)
            shards.append(layout.ShardInfo(file=file_name, num_records=len(shard_records)))
        splits[split] = layout.SplitInfo(
            num_records=len(records), shards=tuple(shards), rejected={},
            annotation_file=f"{split}.json",
            annotation_sha256=hashlib.sha256(f"{dataset_name}/{split}/{seed}".encode()).hexdigest())

    # The metadata files and build_info.json come from the build job's own writer.
    label_map = annotations.build_label_map({"fixture": [
        {"id": category_ids[i], "name": names[i],
         "supercategory": supercategories[i % len(supercategories)]}
        for i in range(num_classes)]})
    info = metadata.write_build_outputs(
        out_dir, dataset_name=dataset_name, label_map=label_map, splits=splits,
        label_counts=np.asarray(per_split["train"]), class_weighting="inverse", beta=0.999,
        options={"fixture": True, "image_size": list(image_size), "seed": seed,
                 "jpeg_quality": jpeg_quality})
    return info

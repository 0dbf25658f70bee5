"""The trainer's input pipeline: a build-job output folder -> batches of (images, labels, weights).

    info = load_build_info(data_dir)
    weights = load_class_weights(data_dir, info)
    ds = make_dataset(data_dir, "train", ReaderConfig(image_size=299, batch_size=60),
                      training=True, class_weights=weights, repeat=True)
    for images, labels, sample_weights in ds: ...   # uint8 [B, S, S, 3], [B], [B]

Everything is read through `tf.io.gfile`, so `data_dir` may be a `gs://` folder. The number of
classes, the shard files and their record counts come from `build_info.json`; the per-record
fields from `schemas.features.parse_example` (no feature key is spelled here).

Training: shuffled files -> parallel interleave -> record shuffle -> parse -> label check ->
random-resized-crop that decodes only the crop (`tf.io.decode_and_crop_jpeg`) + flip -> batch.
Eval: files and records in build order, square centre crop, every record exactly once per pass.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from typing import Any

import numpy as np
import tensorflow as tf

from schemas import features, layout

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class ReaderConfig:
    """How images are read and augmented. `batch_size` is the global batch (see make_dataset).

    Memory: the record shuffle holds `shuffle_buffer` serialized records, i.e. still-compressed
    JPEGs. A 400 px (longer side) q90 JPEG of a photo is ~30-60 KB, so the default 10,000 records
    take ~0.3-0.6 GB of host RAM; decoded 400x300 pixels would take 3.6 GB, which is why the
    shuffle sits before decoding.
    """

    image_size: int = 299  # output height and width
    batch_size: int = 60  # global batch; each input pipeline gets its share
    shuffle_buffer: int = 10_000  # in records (training only)
    cycle_length: int = 8  # shard files read concurrently (capped at the number of files)
    # Inception-style random-resized-crop: the crop covers [min_crop_area, 1] of the image, with
    # width/height in aspect_ratio_range; then resized to image_size x image_size.
    min_crop_area: float = 0.08
    aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3)
    # Stronger augmentation for rarer classes (the original records carried an `aug_level`; we
    # derive it from label_counts.txt): classes whose train count is strictly below the
    # `rare_class_quantile` quantile of the non-zero per-class counts (default: the median) crop
    # with min area `rare_class_min_crop_area` instead. None: every class uses min_crop_area.
    rare_class_min_crop_area: float | None = None
    rare_class_quantile: float = 0.5
    random_flip: bool = True  # horizontal flip (training only)
    central_fraction: float = 0.875  # eval: centre square of this fraction of the shorter side

    def __post_init__(self):
        if self.image_size <= 0 or self.batch_size <= 0 or self.shuffle_buffer <= 0:
            raise ValueError(f"image_size, batch_size and shuffle_buffer must be > 0: {self}")
        if self.cycle_length <= 0:
            raise ValueError(f"cycle_length must be > 0, got {self.cycle_length}")
        if not 0.0 < self.min_crop_area <= 1.0:
            raise ValueError(f"min_crop_area must be in (0, 1], got {self.min_crop_area}")
        if self.rare_class_min_crop_area is not None and not (
                0.0 < self.rare_class_min_crop_area <= self.min_crop_area):
            raise ValueError(
                f"rare_class_min_crop_area must be in (0, min_crop_area={self.min_crop_area}] "
                f"(a smaller area is the stronger augmentation), got "
                f"{self.rare_class_min_crop_area}")
        if not 0.0 <= self.rare_class_quantile <= 1.0:
            raise ValueError(f"rare_class_quantile must be in [0, 1], got {self.rare_class_quantile}")
        low, high = self.aspect_ratio_range
        if not 0.0 < low <= high:
            raise ValueError(f"aspect_ratio_range must be 0 < low <= high, got {(low, high)}")
        if not 0.0 < self.central_fraction <= 1.0:
            raise ValueError(f"central_fraction must be in (0, 1], got {self.central_fraction}")


# ---------------------------------------------------------------------------------------------
# Metadata: build_info.json and the statistics files next to the shards.


def _read_text(path: str) -> str:
    with tf.io.gfile.GFile(path, "r") as f:
        return f.read()


def load_build_info(data_dir: str) -> layout.BuildInfo:
    """Reads `build_info.json`; fails if the folder is not a complete build of our schema."""
    path = tf.io.gfile.join(data_dir, layout.BUILD_INFO)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"{data_dir} is not a complete build: {layout.BUILD_INFO} is missing (the build job "
            f"writes it last, so the build is unfinished, failed, or this is the wrong folder)")
    try:
        info = layout.BuildInfo.from_json(_read_text(path))
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a valid build_info.json: {e}") from e
    if info.schema_version != features.SCHEMA_VERSION:
        raise ValueError(
            f"{data_dir} was built with schema version {info.schema_version}, this reader "
            f"expects {features.SCHEMA_VERSION}: rebuild the data or use a matching trainer")
    return info


def _stats_path(data_dir: str, info: layout.BuildInfo, role: str, default: str) -> str:
    return tf.io.gfile.join(data_dir, info.files.get(role, default))


def _load_per_class(path: str, dtype, info: layout.BuildInfo) -> np.ndarray:
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} is missing, though build_info.json says the build is "
                                f"complete")
    values = np.loadtxt(io.StringIO(_read_text(path)), dtype=dtype, ndmin=1)
    if values.shape != (info.num_classes,):
        raise ValueError(f"{path} has {values.size} values, build_info.json says "
                         f"num_classes={info.num_classes}")
    return values


def load_class_weights(data_dir: str, info: layout.BuildInfo) -> np.ndarray:
    """float32 [num_classes] from class_weights.txt (scheme in info.class_weighting)."""
    path = _stats_path(data_dir, info, "class_weights", layout.CLASS_WEIGHTS)
    weights = _load_per_class(path, np.float32, info)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"{path} holds negative or non-finite weights")
    return weights


def load_label_counts(data_dir: str, info: layout.BuildInfo) -> np.ndarray:
    """int64 [num_classes]: train records written per class, from label_counts.txt."""
    path = _stats_path(data_dir, info, "label_counts", layout.LABEL_COUNTS)
    return _load_per_class(path, np.int64, info)


def load_label_map(data_dir: str, info: layout.BuildInfo) -> list[dict[str, Any]]:
    """label_map.json: one {index, category_id, name, supercategory, ...} per class, by index."""
    path = _stats_path(data_dir, info, "label_map", layout.LABEL_MAP)
    entries = sorted(json.loads(_read_text(path)), key=lambda e: e["index"])
    if [e["index"] for e in entries] != list(range(info.num_classes)):
        raise ValueError(f"{path} does not list indices 0..{info.num_classes - 1} exactly once")
    return entries


def shard_paths(data_dir: str, info: layout.BuildInfo, split: str) -> list[str]:
    """The split's shard files, in build order, from build_info.json (not a directory listing)."""
    if split not in info.splits:
        raise ValueError(f"{data_dir} has no split {split!r}; build_info.json lists "
                         f"{sorted(info.splits)}")
    return [tf.io.gfile.join(data_dir, shard.file) for shard in info.splits[split].shards]


def per_class_min_crop_area(label_counts: np.ndarray, config: ReaderConfig) -> np.ndarray:
    """float32 [C]: the random-resized-crop min area for each class (the rare-class rule).

    Classes whose count is strictly below the `config.rare_class_quantile` quantile of the
    non-zero counts get `config.rare_class_min_crop_area`; the rest `config.min_crop_area`.
    Strictly below: when every class has the same count, no class is rare.
    """
    counts = np.asarray(label_counts)
    areas = np.full(counts.shape, config.min_crop_area, np.float32)
    if config.rare_class_min_crop_area is None or not np.any(counts > 0):
        return areas
    threshold = np.quantile(counts[counts > 0], config.rare_class_quantile)
    areas[counts < threshold] = config.rare_class_min_crop_area
    return areas


# ---------------------------------------------------------------------------------------------
# Per-record decoding: plain functions, usable eagerly and inside Dataset.map.


def _to_uint8(image: tf.Tensor) -> tf.Tensor:
    """The resize's float pixels back to uint8 (rounded). Batches stay uint8 on the host: a
    quarter of float32's bytes to batch, prefetch and copy to the GPU, where the model's first
    layer (`train.models.to_model_range`) scales them to [-1, 1]."""
    return tf.saturate_cast(image + 0.5, tf.uint8)


def sample_crop_window(jpeg_shape: tf.Tensor, min_area: float | tf.Tensor, *,
                       min_area_floor: float,
                       aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
                       seed: tf.Tensor) -> tf.Tensor:
    """int32 [4] (offset_y, offset_x, height, width): an Inception-style random crop.

    The crop covers [min_area, 1] of the image with width/height in aspect_ratio_range. The
    sampler's area range is a static attribute, so it draws areas in [min_area_floor, 1] and
    rejects crops below `min_area`, which is a tensor input (`min_object_covered` against the
    whole-image box): per record the area is uniform on [min_area, 1] whatever the floor.
    """
    whole_image = tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4])
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        jpeg_shape, bounding_boxes=whole_image, seed=seed,
        min_object_covered=tf.cast(min_area, tf.float32),
        aspect_ratio_range=list(aspect_ratio_range), area_range=[min_area_floor, 1.0],
        max_attempts=100,  # after which it falls back to the whole image
        use_image_if_no_bounding_boxes=True)
    return tf.concat([begin[:2], size[:2]], axis=0)


def decode_train(image_bytes: tf.Tensor, image_size: int, min_area: float | tf.Tensor = 0.08, *,
                 min_area_floor: float | None = None,
                 aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
                 random_flip: bool = True, seed: tf.Tensor | None = None) -> tf.Tensor:
    """JPEG bytes -> uint8 [S, S, 3]: random-resized-crop, decoding only the crop.

    Args:
      min_area: the crop covers at least this fraction of the image; a Python float or a scalar
        tensor (e.g. looked up per class).
      min_area_floor: the smallest `min_area` any call may pass (see sample_crop_window);
        required when `min_area` is a tensor.
      seed: shape [2] integer tensor for the stateless random ops (reproducible); None draws one.
    """
    if min_area_floor is None:
        if isinstance(min_area, tf.Tensor):
            raise ValueError("decode_train: pass min_area_floor when min_area is a tensor")
        min_area_floor = float(min_area)
    if seed is None:
        seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int64)
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    crop_window = sample_crop_window(
        tf.io.extract_jpeg_shape(image_bytes),  # reads the JPEG header only
        min_area, min_area_floor=min_area_floor, aspect_ratio_range=aspect_ratio_range,
        seed=crop_seed)
    # Decoding only the crop skips the IDCT of the discarded blocks: the main CPU saving.
    image = tf.io.decode_and_crop_jpeg(image_bytes, crop_window, channels=3)
    if random_flip:
        # On the uint8 crop, before the resize, and through a cond so only the taken branch runs
        # (tf.image's flip reverses every image and then selects).
        image = tf.cond(tf.random.stateless_uniform([], flip_seed) < 0.5,
                        lambda: tf.reverse(image, axis=[1]), lambda: image)
    image = tf.image.resize(image, [image_size, image_size], method="bilinear")
    return _to_uint8(image)


def decode_eval(image_bytes: tf.Tensor, image_size: int,
                central_fraction: float = 0.875) -> tf.Tensor:
    """JPEG bytes -> uint8 [S, S, 3]: the centre square, resized.

    The square's side is `central_fraction` of the shorter side (as timm and big_vision evaluate;
    Inception's 87.5% centre crop without its aspect distortion), so eval keeps aspect ratios.
    Only the square is decoded.
    """
    shape = tf.io.extract_jpeg_shape(image_bytes)
    height, width = shape[0], shape[1]
    side = tf.maximum(
        tf.cast(tf.cast(tf.minimum(height, width), tf.float32) * central_fraction, tf.int32), 1)
    crop_window = tf.stack([(height - side) // 2, (width - side) // 2, side, side])
    image = tf.io.decode_and_crop_jpeg(image_bytes, crop_window, channels=3)
    image = tf.image.resize(image, [image_size, image_size], method="bilinear")
    return _to_uint8(image)


# ---------------------------------------------------------------------------------------------
# The dataset.


def _check_label(record: dict, num_classes: int, where: str) -> dict:
    label = record["label"]
    check = tf.debugging.Assert(
        tf.logical_and(label >= 0, label < num_classes),
        [f"label out of range [0, {num_classes}) in {where}: the shards do not match "
         f"build_info.json's num_classes. source_id, label:", record["source_id"], label])
    with tf.control_dependencies([check]):
        return {**record, "label": tf.identity(label)}


def make_dataset(data_dir: str, split: str, config: ReaderConfig, *, training: bool,
                 class_weights: np.ndarray | None = None,
                 label_counts: np.ndarray | None = None,
                 input_context: tf.distribute.InputContext | None = None,
                 seed: int | None = None, repeat: bool = False) -> tf.data.Dataset:
    """Batches of (images uint8 [B, S, S, 3], labels int32 [B], weights float32 [B]).

    Args:
      training: shuffle files and records, random-resized-crop + flip, drop the last partial
        batch. Otherwise: build order, centre crop, every record exactly once per pass.
      class_weights: float [C]; each example's weight is class_weights[label]. None: ones.
      label_counts: int [C] for the rare-class rule; read from data_dir when the rule is on and
        this is None.
      input_context: from `strategy.distribute_datasets_from_function`. Files are split
        disjointly across input pipelines, and each pipeline batches
        `input_context.get_per_replica_batch_size(config.batch_size)`.
      seed: seeds the file shuffle, the record shuffle and the augmentation stream. Training
        order still varies between runs (the parallel interleave is non-deterministic for speed).
      repeat: repeat indefinitely (one pass otherwise).
    """
    info = load_build_info(data_dir)
    paths = shard_paths(data_dir, info, split)
    if not paths:
        raise ValueError(f"{data_dir} split {split!r} has no shard files in build_info.json")
    num_classes = info.num_classes
    batch_size = config.batch_size
    if input_context is not None:
        if len(paths) < input_context.num_input_pipelines:
            raise ValueError(
                f"{data_dir} split {split!r} has {len(paths)} shard files, fewer than the "
                f"{input_context.num_input_pipelines} input pipelines: rebuild with more shards")
        batch_size = input_context.get_per_replica_batch_size(config.batch_size)
    weights = np.ones([num_classes], np.float32) if class_weights is None else np.asarray(
        class_weights, np.float32)
    if weights.shape != (num_classes,):
        raise ValueError(f"class_weights has shape {weights.shape}, expected ({num_classes},)")
    min_areas = np.full([num_classes], config.min_crop_area, np.float32)
    if training and config.rare_class_min_crop_area is not None:
        counts = load_label_counts(data_dir, info) if label_counts is None else np.asarray(
            label_counts)
        if counts.shape != (num_classes,):
            raise ValueError(f"label_counts has shape {counts.shape}, expected ({num_classes},)")
        min_areas = per_class_min_crop_area(counts, config)
        logging.info("Rare-class augmentation: %d of %d classes crop with min area %s",
                     int(np.sum(min_areas < config.min_crop_area)), num_classes,
                     config.rare_class_min_crop_area)
    where = f"{data_dir} split {split!r}"

    def decode(record, record_seed=None):
        if training:
            image = decode_train(
                record["image"], config.image_size, tf.gather(min_areas, record["label"]),
                min_area_floor=float(min_areas.min()),
                aspect_ratio_range=config.aspect_ratio_range,
                random_flip=config.random_flip, seed=record_seed)
        else:
            image = decode_eval(record["image"], config.image_size, config.central_fraction)
        label = tf.cast(record["label"], tf.int32)
        return image, label, tf.gather(weights, label)  # the weight lookup stays in the graph

    files = tf.data.Dataset.from_tensor_slices(paths)
    if input_context is not None:
        # Before the shuffle: every pipeline shards the same list, so the parts are disjoint.
        files = files.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if training:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        files = files.repeat()
    ds = files.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(config.cycle_length, len(paths)),
        num_parallel_calls=AUTOTUNE,
        deterministic=not training)  # training takes whichever file has data ready
    if training:
        ds = ds.shuffle(config.shuffle_buffer, seed=seed)  # compressed records: see ReaderConfig
    ds = ds.map(features.parse_example, num_parallel_calls=AUTOTUNE)
    ds = ds.map(lambda record: _check_label(record, num_classes, where))
    if training:
        # One stateless seed pair per record: no lock shared by the parallel decode calls.
        ds = tf.data.Dataset.zip(ds, tf.data.Dataset.random(seed=seed).batch(2))
    ds = ds.map(decode, num_parallel_calls=AUTOTUNE, deterministic=not training)
    ds = ds.batch(batch_size, drop_remainder=training)  # fixed shapes for XLA / distribution
    return ds.prefetch(AUTOTUNE)

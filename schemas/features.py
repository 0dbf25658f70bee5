"""The TFRecord feature table: the one source of truth for the writer and the reader.

The build job turns a record into bytes with `to_example`; the trainer parses with
`parse_example`, whose spec is derived from the same table. Python code everywhere uses the
short field names (`image`, `label`, ...); only this module spells the Example keys, which follow
TensorFlow Model Garden's classification parser so its trainer can read our shards unchanged.

TensorFlow is imported inside the functions: Beam workers and tests import this module, and
importing TF costs seconds.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Feature:
    name: str  # field name used in Python: record attribute and parsed-dict key
    key: str  # tf.train.Example feature key
    dtype: str  # 'bytes' or 'int64'
    doc: str


FEATURES: tuple[Feature, ...] = (
    Feature("image", "image/encoded", "bytes", "JPEG bytes of an RGB image"),
    Feature("format", "image/format", "bytes", "encoding of `image`; always b'jpeg'"),
    Feature("height", "image/height", "int64", "height of the encoded image in pixels"),
    Feature("width", "image/width", "int64", "width of the encoded image in pixels"),
    Feature("label", "image/class/label", "int64", "dense class index 0..C-1 (label map order)"),
    Feature("label_text", "image/class/text", "bytes", "class name, UTF-8"),
    Feature("supercategory", "image/class/supercategory", "int64",
            "dense supercategory index (order of `supercategories` in build_info.json)"),
    Feature("source_id", "image/source_id", "bytes", "image id in the source annotation JSON"),
)

FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
IMAGE_FORMAT = b"jpeg"


def to_example(values: Mapping[str, Any]) -> bytes:
    """Serializes one record, given as {field name: value}, to tf.train.Example bytes.

    Every field in FEATURES must be present and no other; str values of bytes fields are
    UTF-8 encoded.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    missing = set(FIELD_NAMES) - set(values)
    extra = set(values) - set(FIELD_NAMES)
    if missing or extra:
        raise ValueError(f"Example fields do not match the schema: missing {sorted(missing)}, "
                         f"unexpected {sorted(extra)}")
    feature = {}
    for f in FEATURES:
        value = values[f.name]
        if f.dtype == "bytes":
            if isinstance(value, str):
                value = value.encode("utf-8")
            feature[f.key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        else:
            feature[f.key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    # `feature` is a protobuf map: without `deterministic`, its serialized order can change
    # from one process to the next, and reruns would not be byte-identical.
    return example.SerializeToString(deterministic=True)


def parse_spec() -> dict:
    """{Example key: tf.io.FixedLenFeature} for every feature in the table."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    dtypes = {"bytes": tf.string, "int64": tf.int64}
    return {f.key: tf.io.FixedLenFeature([], dtypes[f.dtype]) for f in FEATURES}


def parse_example(serialized) -> dict:
    """Parses one serialized Example (a scalar string tensor) into {field name: tensor}.

    Works eagerly and inside `tf.data.Dataset.map`.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    parsed = tf.io.parse_single_example(serialized, parse_spec())
    return {f.name: parsed[f.key] for f in FEATURES}

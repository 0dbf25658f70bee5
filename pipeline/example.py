"""Turns an annotated record and its normalised image into tf.train.Example bytes."""

from __future__ import annotations

from pipeline.images import EncodedImage
from pipeline.records import ImageRecord
from schemas import features


def encode_example(record: ImageRecord, image: EncodedImage) -> bytes:
    return features.to_example({
        "image": image.data,
        "format": features.IMAGE_FORMAT,
        "height": image.height,
        "width": image.width,
        "label": record.label,
        "label_text": record.label_text,
        "supercategory": record.supercategory,
        "source_id": record.image_id,
    })

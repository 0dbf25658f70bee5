"""The records passed between build stages, and the reasons an input can be rejected."""

from __future__ import annotations

import dataclasses
import json
from typing import Optional

# Reject reason codes: every input that is not written is reported with one of these.
MISSING_FILE = "missing_file"
UNREADABLE_FILE = "unreadable_file"  # exists but cannot be read (permissions, I/O error)
EMPTY_FILE = "empty_file"
UNDECODABLE_IMAGE = "undecodable_image"  # truncated, corrupt, or not an image (an HTML page)
TOO_MANY_PIXELS = "too_many_pixels"  # decompression-bomb guard
PATH_ESCAPES_ROOT = "path_escapes_root"  # file_name leaves --images_root ('../')
UNKNOWN_CATEGORY = "unknown_category"  # annotation names a category id not in `categories`
UNKNOWN_IMAGE = "unknown_image"  # annotation names an image id not in `images`
DUPLICATE_IMAGE_ID = "duplicate_image_id"  # the same id appears more than once in `images`
MULTIPLE_ANNOTATIONS = "multiple_annotations"  # more than one annotation for one image
UNANNOTATED_IMAGE = "unannotated_image"  # image in a labelled split without an annotation

REASONS = (MISSING_FILE, UNREADABLE_FILE, EMPTY_FILE, UNDECODABLE_IMAGE, TOO_MANY_PIXELS,
           PATH_ESCAPES_ROOT, UNKNOWN_CATEGORY, UNKNOWN_IMAGE, DUPLICATE_IMAGE_ID,
           MULTIPLE_ANNOTATIONS, UNANNOTATED_IMAGE)


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    """One annotated image, joined with its category, waiting to be read and encoded."""

    split: str
    image_id: str  # source image id, as a string (ids are ints in iNat, strings elsewhere)
    file_name: str  # as in the JSON, relative to --images_root
    category_id: int  # source category id
    label: int  # dense class index
    label_text: str
    supercategory: int  # dense supercategory index


@dataclasses.dataclass(frozen=True)
class Reject:
    """One input that was not written, with a machine-readable reason and a human one."""

    split: str
    reason: str  # one of REASONS
    detail: str  # human-readable, names the file where there is one
    image_id: Optional[str] = None
    file_name: Optional[str] = None
    category_id: Optional[int] = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def for_record(cls, record: ImageRecord, reason: str, detail: str) -> "Reject":
        return cls(split=record.split, reason=reason, detail=detail, image_id=record.image_id,
                   file_name=record.file_name, category_id=record.category_id)

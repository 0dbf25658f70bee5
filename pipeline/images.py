"""Image normalisation: raw image bytes in, verified RGB JPEG bytes out (or a reason why not).

    from pipeline.images import ImageError, normalize_image
    try:
        image = normalize_image(data, max_side=400)   # EncodedImage(data, height, width, reencoded)
    except ImageError as e:
        reject(e.reason, e.detail)                    # reason is a code from pipeline.records

The format is detected from the content (the caller passes bytes only; an HTML error page or a
PNG named `.jpg` is recognised for what it is). What happens to an image:

- RGB baseline or progressive JPEG, no EXIF rotation, within `max_side`: the original bytes are
  kept (no generation loss, no encode cost) after a full decode at 1/8 scale, which still reads
  every entropy-coded byte, so truncated files are caught.
- Anything else is decoded (JPEGs shrunk by 2x or more are decoded at reduced scale with
  `Image.draft`, which is several times faster than a full decode), converted to RGB, resized so
  the longer side is `max_side` (never upscaled), rotated per EXIF orientation and re-encoded as
  baseline JPEG at `jpeg_quality`, without metadata. Same input, same bytes out.

Pure functions: no Beam, no TensorFlow, nothing done at import time.
"""

from __future__ import annotations

import dataclasses
import io
import struct

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.records import EMPTY_FILE, TOO_MANY_PIXELS, UNDECODABLE_IMAGE

# Pillow's own decompression-bomb limit (~0.25 GB of RGBA); 2.7M iNat photos are far below it.
DEFAULT_MAX_PIXELS = 89_478_485

# Formats a photo collection holds. Restricting Image.open to them keeps Pillow's more lenient
# plugins (TGA, for one, has no magic number) from "recognising" random bytes as an image.
# (Multi-picture JPEGs from cameras open through "JPEG" and come back with format "MPO".)
ACCEPTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")

# What Pillow raises for bad data, at open or at load. UnidentifiedImageError is an OSError;
# truncation is an OSError; broken headers surface as SyntaxError, ValueError, EOFError or
# struct.error depending on the plugin.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)

_WHITE = (255, 255, 255)


class ImageError(Exception):
    """An input that cannot become a training image; `reason` is a pipeline.records code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class EncodedImage:
    data: bytes = dataclasses.field(repr=False)  # JPEG bytes of an RGB image (kept out of logs)
    height: int  # of the encoded image
    width: int
    reencoded: bool  # False when `data` are the input bytes, unchanged


def normalize_image(data: bytes, *, max_side: int | None = None,
                    max_pixels: int = DEFAULT_MAX_PIXELS, jpeg_quality: int = 90) -> EncodedImage:
    """Verifies and normalises one image; raises ImageError with a reason code if it cannot.

    max_side: the longer side of the output is at most this (None: keep the size).
    max_pixels: images whose header claims more pixels are rejected before decoding.
    jpeg_quality: quality of re-encoded images (kept originals are not touched).
    """
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be a positive number of pixels or None, got {max_side}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
    if not data:
        raise ImageError(EMPTY_FILE, "empty file (0 bytes)")

    img = _open(data)
    width, height = img.size
    if width * height > max_pixels:
        raise ImageError(TOO_MANY_PIXELS, f"{img.format} header claims {width}x{height} = "
                                          f"{width * height} pixels, limit {max_pixels}")
    target = _target_size(width, height, max_side)
    orientation = _orientation(img)

    if img.format == "JPEG" and img.mode == "RGB" and orientation == 1 and target is None:
        _verify_jpeg(img)
        return EncodedImage(data=data, height=height, width=width, reencoded=False)

    img = _decode(img, target)
    img = _to_rgb(img)
    if target is not None and not _within_a_pixel(img.size, target):
        # Antialiased bicubic (Pillow widens the kernel when shrinking): the filter of
        # PIL.thumbnail and torchvision, visually on par with LANCZOS here at ~2/3 of its cost.
        # reducing_gap speeds up large non-JPEG shrinks (a box reduce first), invisibly.
        img = img.resize(target, Image.Resampling.BICUBIC, reducing_gap=3.0)
    if orientation != 1:
        # Rotated after the resize: fewer pixels to move. The target is symmetric in w/h.
        img = img.transpose(_TRANSPOSE[orientation])

    out = io.BytesIO()
    # No metadata: the orientation is applied (keeping the tag would rotate twice), a CMYK or
    # wide-gamut ICC profile would misdescribe the pixels we write, and Pillow would otherwise
    # copy the source's JPEG comment.
    img.save(out, "JPEG", quality=jpeg_quality, comment=b"")
    return EncodedImage(data=out.getvalue(), height=img.height, width=img.width, reencoded=True)


def _open(data: bytes) -> Image.Image:
    """Reads the header only (no pixel data is decoded yet)."""
    try:
        # BytesIO shares the bytes object until written to: no copy.
        return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as e:
        # Pillow refuses headers claiming over 2x its own limit before we can look at them; the
        # reason is the same as ours, so report it as ours.
        raise ImageError(TOO_MANY_PIXELS, f"decompression bomb: {e}") from e
    except Image.DecompressionBombWarning as e:
        # Only raised when warnings are turned into errors (python -W error): same meaning.
        raise ImageError(TOO_MANY_PIXELS, f"decompression bomb: {e}") from e
    except UnidentifiedImageError as e:
        raise ImageError(UNDECODABLE_IMAGE, f"not an image: starts with {data[:16]!r}") from e
    except _DECODE_ERRORS as e:
        raise ImageError(UNDECODABLE_IMAGE, f"unreadable image header: {e}") from e


def _target_size(width: int, height: int, max_side: int | None) -> tuple[int, int] | None:
    """(w, h) with the longer side == max_side and the aspect kept; None if no shrink needed."""
    longer = max(width, height)
    if max_side is None or longer <= max_side:
        return None  # never upscale
    scale = max_side / longer
    # The longer side is exact; the shorter one is rounded to nearest, and never 0.
    if width >= height:
        return max_side, max(1, round(height * scale))
    return max(1, round(width * scale)), max_side


def _within_a_pixel(size: tuple[int, int], target: tuple[int, int]) -> bool:
    """True when a scaled JPEG decode already gave the target size but for rounding: libjpeg
    rounds the scaled sides up, the target rounds to nearest. A full resize for one pixel row
    would cost as much as the decode itself, for an aspect change under 0.5%."""
    return max(size) == max(target) and abs(min(size) - min(target)) <= 1


def _orientation(img: Image.Image) -> int:
    """EXIF (or XMP) orientation 1..8; 1 when absent or invalid."""
    try:
        value = img.getexif().get(0x0112, 1)  # ExifTags.Base.Orientation
    except _DECODE_ERRORS:
        return 1  # a broken EXIF block does not make the pixels unusable
    return value if value in _TRANSPOSE else 1


# ImageOps.exif_transpose's table (tests check we match it), applied by hand so that it can run
# after the resize.
_TRANSPOSE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _verify_jpeg(img: Image.Image) -> None:
    """Decodes the whole JPEG at 1/8 scale: ~6x cheaper than a full decode, and libjpeg still
    Huffman-decodes every block, so truncated or corrupt entropy data is detected."""
    img.draft("RGB", (1, 1))  # asks for the smallest scale libjpeg offers (1/8)
    _load(img)


def _decode(img: Image.Image, target: tuple[int, int] | None) -> Image.Image:
    """Decodes the pixels, at reduced scale when a JPEG shrinks by 2x or more."""
    if target is not None and img.format in ("JPEG", "MPO") and max(img.size) >= 2 * max(target):
        # Pillow picks the largest 1/2, 1/4, 1/8 scale s with size // request >= s. Asking for
        # the exact scaled size rounded down (not the rounded target) keeps e.g. 623 -> 311.5
        # eligible for s = 2; libjpeg rounds up, so the result is never below the target's
        # longer side and the final resize is still a (small) downscale or none at all.
        longer = max(img.size)
        longer_target = max(target)
        img.draft("RGB", (max(1, img.width * longer_target // longer),
                          max(1, img.height * longer_target // longer)))
    _load(img)
    return img


def _load(img: Image.Image) -> None:
    try:
        img.load()
    except Image.DecompressionBombError as e:
        # GIF frames can grow past the header size; Pillow checks them while loading.
        raise ImageError(TOO_MANY_PIXELS, f"decompression bomb: {e}") from e
    except _DECODE_ERRORS as e:
        kind = "truncated" if "truncated" in str(e) else "corrupt"
        raise ImageError(UNDECODABLE_IMAGE, f"{kind} {img.format}: {e}") from e


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB; transparency is composited over white."""
    mode, fmt = img.mode, img.format
    if "transparency" in img.info and mode in ("P", "L", "RGB"):
        # Transparency as a palette alpha or a single transparent colour (PNG tRNS, GIF).
        img = img.convert("RGBA")
    elif mode == "RGB":
        return img
    elif mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
    elif mode == "I" or mode.startswith("I;16"):
        img = _sixteen_to_eight(img)
    try:
        if img.mode == "RGBA":
            # Transparent areas are where the photographer cut the subject out: show them as a
            # plain white page, like every image viewer does. Dropping the alpha instead would
            # expose whatever colour the transparent pixels happen to store (often black or
            # garbage), which a model would learn as a spurious edge.
            background = Image.new("RGB", img.size, _WHITE)
            background.paste(img, mask=img.getchannel("A"))
            return background
        return img.convert("RGB")  # L, 1, CMYK, YCbCr, RGBX, LAB, HSV, F
    except ValueError as e:  # a mode Pillow cannot convert
        raise ImageError(UNDECODABLE_IMAGE, f"cannot convert {mode} {fmt} to RGB: {e}") from e


def _sixteen_to_eight(img: Image.Image) -> Image.Image:
    """16-bit grayscale -> 8-bit L. Pillow's convert clips at 255 (a 16-bit photo turns white);
    scale by 1/256 instead. Mode I holds 16-bit PNGs too: scale when values exceed 8 bits."""
    arr = np.asarray(img)
    if img.mode.startswith("I;16") or arr.max(initial=0) > 255:
        arr = arr >> 8
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))  # 2-D uint8 -> mode L

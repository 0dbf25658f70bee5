"""Small awkward images, made in memory, for tests (no tests in here).

    from tests import imagefixtures as fx
    data = fx.rgb_jpeg(64, 48, seed=1)              # bytes of a photo-like RGB JPEG
    expected = fx.write_awkward_tree(tmp_path)      # {relative file name: reason code or "ok"}

Every function is deterministic in its arguments. The content is smooth gradients plus a few
shapes and mild noise, so JPEGs behave like photos (not like flat colour or pure noise).
"""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
from PIL import Image

from pipeline.records import EMPTY_FILE, TOO_MANY_PIXELS, UNDECODABLE_IMAGE

OK = "ok"


def rgb_array(w: int, h: int, seed: int) -> np.ndarray:
    """(h, w, 3) uint8 photo-like content."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(40, 200, size=3).astype(np.float32)
    slope = rng.uniform(-80, 80, size=(2, 3)).astype(np.float32)
    img = base + (x / max(w, 1))[..., None] * slope[0] + (y / max(h, 1))[..., None] * slope[1]
    for _ in range(3):  # a few discs, so that orientation and crops are visible
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.1, 0.3) * min(w, h)
        inside = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        img[inside] = rng.uniform(0, 255, size=3)
    img += rng.normal(0, 6, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _save(img: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **kwargs)
    return out.getvalue()


def rgb_jpeg(w: int, h: int, seed: int = 0, progressive: bool = False, quality: int = 90) -> bytes:
    return _save(Image.fromarray(rgb_array(w, h, seed)), "JPEG", quality=quality,
                 progressive=progressive)


def grayscale_jpeg(w: int, h: int, seed: int = 0) -> bytes:
    return _save(Image.fromarray(rgb_array(w, h, seed)).convert("L"), "JPEG", quality=90)


def cmyk_jpeg(w: int, h: int, seed: int = 0) -> bytes:
    """A CMYK JPEG as print workflows write it (Pillow adds the Adobe marker)."""
    return _save(Image.fromarray(rgb_array(w, h, seed)).convert("CMYK"), "JPEG", quality=90)


def png_rgba(w: int, h: int, seed: int = 0) -> bytes:
    """RGBA PNG: left half fully transparent (stored colour black), right half opaque."""
    rgba = np.dstack([rgb_array(w, h, seed), np.full((h, w), 255, np.uint8)])
    rgba[:, : w // 2] = (0, 0, 0, 0)
    return _save(Image.fromarray(rgba), "PNG")


def palette_png(w: int, h: int, seed: int = 0) -> bytes:
    """Mode P PNG whose palette index 0 is transparent; the top rows use index 0."""
    quantized = Image.fromarray(rgb_array(w, h, seed)).quantize(colors=16)
    arr = np.asarray(quantized).copy()
    arr[arr == 0] = 1  # index 0 only where we put it
    arr[: max(1, h // 4)] = 0
    out = Image.fromarray(arr)  # mode L ...
    out.putpalette(quantized.getpalette())  # ... becomes P with the same colours
    return _save(out, "PNG", transparency=0)


def exif_rotated_jpeg(w: int, h: int, seed: int = 0, orientation: int = 6) -> bytes:
    """JPEG whose pixels are stored w x h with an EXIF orientation tag.

    Orientation 6 means "rotate 90 degrees clockwise to display": the upright image is h x w.
    """
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _save(Image.fromarray(rgb_array(w, h, seed)), "JPEG", quality=90, exif=exif.tobytes())


def truncated_jpeg(w: int, h: int, seed: int = 0, keep: float = 0.6,
                   progressive: bool = False) -> bytes:
    """A JPEG cut short, as an interrupted download leaves it."""
    data = rgb_jpeg(w, h, seed, progressive=progressive)
    return data[: int(len(data) * keep)]


def html_page_bytes() -> bytes:
    """What a failed download saves under the image's name."""
    return (b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
            b"<body><h1>Not Found</h1><p>The requested URL was not found.</p></body></html>\n")


def png_header_only(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims width x height RGB pixels (a bomb shape)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def write_awkward_tree(root: str | os.PathLike) -> dict[str, str]:
    """Writes one file of each awkward kind under root, with the names real data uses.

    Returns {file name relative to root: the reason code normalize_image gives with default
    options, or "ok"}.
    """
    files = {
        "photos/baseline.jpg": (rgb_jpeg(120, 90, 1), OK),
        "photos/progressive.jpg": (rgb_jpeg(90, 120, 2, progressive=True), OK),
        "photos/grayscale.jpg": (grayscale_jpeg(100, 80, 3), OK),
        "photos/cmyk.jpg": (cmyk_jpeg(80, 100, 4), OK),
        "photos/really_a_png.jpg": (png_rgba(96, 64, 5), OK),
        "photos/palette.png": (palette_png(64, 64, 6), OK),
        "photos/rotated.jpg": (exif_rotated_jpeg(120, 80, 7), OK),
        "photos/empty.jpg": (b"", EMPTY_FILE),
        "photos/truncated.jpg": (truncated_jpeg(120, 90, 8), UNDECODABLE_IMAGE),
        "photos/error_page.jpg": (html_page_bytes(), UNDECODABLE_IMAGE),
        # 20000 x 20000: over twice Pillow's own limit, so Pillow's error path is exercised.
        "photos/bomb.png": (png_header_only(20_000, 20_000), TOO_MANY_PIXELS),
    }
    expected = {}
    for name, (data, outcome) in files.items():
        path = os.path.join(os.fspath(root), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        expected[name] = outcome
    return expected

"""pipeline.images.normalize_image on each awkward input: outcome, output format, size, bytes."""

import io

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps, JpegImagePlugin

from tests import imagefixtures as fx
from pipeline.images import DEFAULT_MAX_PIXELS, EncodedImage, ImageError, normalize_image
from pipeline.records import EMPTY_FILE, TOO_MANY_PIXELS, UNDECODABLE_IMAGE


def decode(result: EncodedImage) -> np.ndarray:
    """Asserts the output is an RGB JPEG of the announced size; returns its pixels."""
    img = Image.open(io.BytesIO(result.data))
    assert img.format == "JPEG"
    assert img.mode == "RGB"
    assert img.size == (result.width, result.height)
    return np.asarray(img, dtype=np.float32)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean())


# --- passthrough: nothing to change keeps the original bytes -----------------------------------

@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("max_side", [None, 120, 1000])
def test_rgb_jpeg_within_size_keeps_original_bytes(progressive, max_side):
    data = fx.rgb_jpeg(120, 90, seed=1, progressive=progressive)
    result = normalize_image(data, max_side=max_side)
    assert result.data == data
    assert not result.reencoded
    assert (result.width, result.height) == (120, 90)
    decode(result)


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("cut", [2, 12, 1000])
def test_truncated_jpeg_is_caught_in_passthrough(progressive, cut):
    data = fx.rgb_jpeg(300, 200, seed=2, progressive=progressive)
    # Sanity: the header is intact, so only a decode of the entropy data can notice.
    assert Image.open(io.BytesIO(data[:-cut])).size == (300, 200)
    with pytest.raises(ImageError) as e:
        normalize_image(data[:-cut])
    assert e.value.reason == UNDECODABLE_IMAGE
    assert e.value.detail.startswith("truncated JPEG: image file is truncated")


def test_passthrough_verifies_at_reduced_scale(monkeypatch):
    calls = spy_draft(monkeypatch)
    data = fx.rgb_jpeg(320, 240, seed=3)
    assert not normalize_image(data).reencoded
    assert calls == [("RGB", (1, 1))]  # the cheapest full decode: 1/8 scale


# --- shrinking ----------------------------------------------------------------------------------

@pytest.mark.parametrize("w, h, max_side, expected", [
    (800, 600, 400, (400, 300)),    # exactly 2x: draft only
    (1000, 700, 400, (400, 280)),   # draft 2x then resize
    (600, 800, 400, (300, 400)),    # portrait
    (500, 333, 400, (400, 266)),    # < 2x: resize only; 266.4 rounds to 266
    (1601, 1199, 100, (100, 75)),   # odd sizes, 1/8 draft
    (1000, 3, 100, (100, 1)),       # extreme aspect: never 0
])
def test_shrinks_longer_side_to_max_side_keeping_aspect(w, h, max_side, expected):
    result = normalize_image(fx.rgb_jpeg(w, h, seed=4), max_side=max_side)
    assert result.reencoded
    assert (result.width, result.height) == expected
    assert max(result.width, result.height) == max_side
    if w >= h:  # the shorter side is the one rounded: within 1 px of the exact aspect
        assert abs(result.height - result.width * h / w) <= 1
    else:
        assert abs(result.width - result.height * w / h) <= 1
    decode(result)


def test_never_upscales_reencoded_images():
    result = normalize_image(fx.grayscale_jpeg(50, 40, seed=5), max_side=400)
    assert result.reencoded
    assert (result.width, result.height) == (50, 40)


def spy_draft(monkeypatch) -> list:
    calls = []
    original = JpegImagePlugin.JpegImageFile.draft

    def draft(self, mode, size):
        calls.append((mode, size))
        return original(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", draft)
    return calls


def test_draft_used_when_shrinking_by_2x_or_more(monkeypatch):
    calls = spy_draft(monkeypatch)
    result = normalize_image(fx.rgb_jpeg(1600, 1200, seed=6), max_side=300)
    assert calls == [("RGB", (300, 225))]
    assert (result.width, result.height) == (300, 225)


def test_draft_not_used_when_shrinking_less_than_2x(monkeypatch):
    calls = spy_draft(monkeypatch)
    result = normalize_image(fx.rgb_jpeg(600, 450, seed=6), max_side=400)
    assert calls == []
    assert (result.width, result.height) == (400, 300)


def test_draft_path_matches_full_decode_resize():
    data = fx.rgb_jpeg(1200, 900, seed=7)
    reference = Image.open(io.BytesIO(data)).resize((300, 225), Image.Resampling.BICUBIC)
    result = normalize_image(data, max_side=300)
    assert mean_abs_diff(decode(result), reference) < 4.0


def test_truncated_jpeg_is_caught_when_shrinking():
    with pytest.raises(ImageError) as e:
        normalize_image(fx.truncated_jpeg(800, 600, seed=8), max_side=200)
    assert e.value.reason == UNDECODABLE_IMAGE
    assert "truncated" in e.value.detail


# --- conversions --------------------------------------------------------------------------------

def test_grayscale_becomes_rgb():
    data = fx.grayscale_jpeg(100, 80, seed=9)
    pixels = decode(normalize_image(data))
    assert pixels.shape == (80, 100, 3)
    gray = np.asarray(Image.open(io.BytesIO(data)), np.float32)
    for channel in range(3):
        assert mean_abs_diff(pixels[..., channel], gray) < 3.0


def test_cmyk_becomes_rgb_with_the_right_colours():
    data = fx.cmyk_jpeg(80, 100, seed=10)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    result = normalize_image(data)
    assert result.reencoded
    # Colours survive RGB -> CMYK JPEG -> RGB (an inverted Adobe CMYK would be far off).
    assert mean_abs_diff(decode(result), fx.rgb_array(80, 100, seed=10)) < 8.0


def test_png_named_jpg_detected_by_content_and_alpha_over_white():
    data = fx.png_rgba(96, 64, seed=11)
    result = normalize_image(data)
    pixels = decode(result)
    assert (result.width, result.height) == (96, 64)
    transparent, opaque = pixels[:, 4:44], pixels[:, 52:]  # away from the boundary
    assert transparent.min() > 240  # white, not the black stored under alpha 0
    assert mean_abs_diff(opaque, fx.rgb_array(96, 64, seed=11)[:, 52:]) < 8.0


def test_palette_with_transparency_over_white():
    data = fx.palette_png(64, 64, seed=12)
    assert Image.open(io.BytesIO(data)).mode == "P"
    pixels = decode(normalize_image(data))
    assert pixels[:12].min() > 240  # the transparent top quarter
    assert pixels[24:].mean() < 230  # the rest keeps its colours


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    arr = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (32, 1))
    img = Image.fromarray(arr)
    assert img.mode == "I;16"
    out = io.BytesIO()
    img.save(out, "PNG")
    pixels = decode(normalize_image(out.getvalue()))
    expected = (arr >> 8).astype(np.float32)
    assert mean_abs_diff(pixels[..., 0], expected) < 3.0  # Pillow's convert would give 255


# --- orientation --------------------------------------------------------------------------------

@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_like_imageops(orientation):
    data = fx.exif_rotated_jpeg(120, 80, seed=13, orientation=orientation)
    reference = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    result = normalize_image(data)
    assert (result.width, result.height) == reference.size
    assert mean_abs_diff(decode(result), reference) < 3.0
    if orientation == 1:  # upright already: the original bytes, tag and all
        assert not result.reencoded
    else:  # rotated, and the tag is gone (a viewer or decoder must not apply it twice)
        assert result.reencoded
        assert Image.open(io.BytesIO(result.data)).getexif().get(0x0112) is None


def test_orientation_6_swaps_width_and_height_and_combines_with_resize():
    data = fx.exif_rotated_jpeg(400, 200, seed=14, orientation=6)
    result = normalize_image(data, max_side=100)
    assert result.reencoded
    assert (result.width, result.height) == (50, 100)
    reference = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).resize(
        (50, 100), Image.Resampling.BICUBIC)
    assert mean_abs_diff(decode(result), reference) < 6.0


# --- determinism --------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: fx.rgb_jpeg(500, 300, seed=15),
    lambda: fx.cmyk_jpeg(80, 60, seed=15),
    lambda: fx.png_rgba(80, 60, seed=15),
    lambda: fx.exif_rotated_jpeg(80, 60, seed=15),
])
def test_same_input_same_bytes(make):
    first = normalize_image(make(), max_side=64)
    second = normalize_image(make(), max_side=64)
    assert first.reencoded
    assert first == second


def test_jpeg_quality_is_applied():
    data = fx.rgb_jpeg(600, 400, seed=16)
    low = normalize_image(data, max_side=300, jpeg_quality=30)
    high = normalize_image(data, max_side=300, jpeg_quality=95)
    assert len(low.data) < len(high.data)


# --- rejects ------------------------------------------------------------------------------------

def test_empty_file():
    with pytest.raises(ImageError) as e:
        normalize_image(b"")
    assert e.value.reason == EMPTY_FILE


def test_html_page_saved_as_jpg():
    with pytest.raises(ImageError) as e:
        normalize_image(fx.html_page_bytes())
    assert e.value.reason == UNDECODABLE_IMAGE
    assert e.value.detail == "not an image: starts with b'<!DOCTYPE html>\\n'"


@pytest.mark.parametrize("data", [
    bytes(range(256)) * 4,                               # unknown format
    b"\xff\xd8\xff\xe0" + b"\x00" * 100,                  # JPEG magic, broken header
    fx.rgb_jpeg(64, 64, seed=17)[:200],                  # header only
    b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,                   # PNG magic, no IHDR
])
def test_corrupt_inputs_are_undecodable(data):
    with pytest.raises(ImageError) as e:
        normalize_image(data)
    assert e.value.reason == UNDECODABLE_IMAGE
    assert e.value.detail


def test_too_many_pixels_checked_before_decoding(monkeypatch):
    def no_decoding(self):
        raise AssertionError("pixels decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageError) as e:
        normalize_image(fx.rgb_jpeg(200, 100, seed=18), max_pixels=200 * 100 - 1)
    assert e.value.reason == TOO_MANY_PIXELS
    assert "200x100" in e.value.detail


def test_exactly_max_pixels_is_allowed():
    result = normalize_image(fx.rgb_jpeg(200, 100, seed=18), max_pixels=200 * 100)
    assert not result.reencoded


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("side", [
    10_000,  # 1e8 pixels: above our default, below 2x Pillow's (Pillow only warns)
    20_000,  # 4e8 pixels: Pillow raises its own DecompressionBombError
])
def test_bomb_header_rejected_with_our_reason(side):
    with pytest.raises(ImageError) as e:
        normalize_image(fx.png_header_only(side, side))
    assert e.value.reason == TOO_MANY_PIXELS
    assert side * side > DEFAULT_MAX_PIXELS


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_bomb_warning_as_error_still_gives_our_reason():
    with pytest.raises(ImageError) as e:
        normalize_image(fx.png_header_only(10_000, 10_000))
    assert e.value.reason == TOO_MANY_PIXELS


@pytest.mark.parametrize("kwargs", [{"max_side": 0}, {"jpeg_quality": 0}, {"jpeg_quality": 101}])
def test_bad_options_are_programming_errors(kwargs):
    with pytest.raises(ValueError):
        normalize_image(fx.rgb_jpeg(8, 8), **kwargs)


# --- the awkward tree the end-to-end test uses ----------------------------------------------------

def test_awkward_tree_outcomes(tmp_path):
    expected = fx.write_awkward_tree(tmp_path)
    assert {"ok", EMPTY_FILE, UNDECODABLE_IMAGE, TOO_MANY_PIXELS} == set(expected.values())
    for name, outcome in expected.items():
        data = (tmp_path / name).read_bytes()
        try:
            result = normalize_image(data, max_side=100)
        except ImageError as e:
            assert e.reason == outcome, (name, e.detail)
        else:
            assert outcome == "ok", name
            decode(result)
            assert max(result.width, result.height) <= 100


def test_reencoded_output_carries_no_metadata():
    exif = Image.Exif()
    exif[0x0112] = 3
    out = io.BytesIO()
    Image.fromarray(fx.rgb_array(100, 80, seed=19)).save(
        out, "JPEG", exif=exif.tobytes(), comment=b"camera notes", icc_profile=b"\0" * 128)
    result = normalize_image(out.getvalue())
    assert result.reencoded
    info = Image.open(io.BytesIO(result.data)).info
    assert not {"exif", "comment", "icc_profile"} & set(info)

"""The bundled sample dataset: a small synthetic iNaturalist 2021, generated on first use.

    from pipeline.sample import ensure_sample
    sample = ensure_sample()          # outputs/sample_inat2021, generated once (~2 s), then reused
    sample.annotations["train"]       # .../train.json  (also "val")
    sample.images_root                # the folder `file_name` in the JSONs is relative to

The project ships no images, so this module draws them: 12 classes in 3 supercategories, a
long-tailed train split (80 down to 6 images per class) and a val split (8-10 per class), in the
exact 2021 annotation layout. Each class is a combination of a hue and a texture (stripes,
checkerboard, dots, rings) on a noisy background, with random placement, scale and colour
jitter: easy for a small CNN at 64-96 px, not solvable from colour or texture alone.

Like real downloads, train holds a few awkward but valid files (a grayscale JPEG, a PNG named
.jpg, an EXIF-rotated JPEG, a CMYK JPEG) and exactly one truncated JPEG, which the build rejects.

Same seed, same bytes: every value comes from a seeded numpy generator, nothing from the clock.
"""

from __future__ import annotations

import colorsys
import dataclasses
import io
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from typing import Any

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

DEFAULT_SAMPLE_ROOT = "outputs/sample_inat2021"  # relative to the working directory
SAMPLE_VERSION = 1  # bump when the generated content changes: old samples are regenerated
MARKER = "SAMPLE_COMPLETE.json"  # written last: its presence means the sample is complete
SPLITS = ("train", "val")
JPEG_QUALITY = 85

# (category id, kingdom, phylum, class, order, family, genus, epithet, common name, supercat).
# Ids are not contiguous and the list is not sorted by id, as joins by id must not care.
_TAXA = (
    (317, "Plantae", "Tracheophyta", "Magnoliopsida", "Fagales", "Fagaceae", "Quercus", "robur",
     "English Oak", "Plants"),
    (3, "Animalia", "Arthropoda", "Insecta", "Lepidoptera", "Nymphalidae", "Danaus", "plexippus",
     "Monarch", "Insects"),
    (2048, "Fungi", "Basidiomycota", "Agaricomycetes", "Agaricales", "Amanitaceae", "Amanita",
     "muscaria", "Fly Agaric", "Fungi"),
    (42, "Animalia", "Arthropoda", "Insecta", "Hymenoptera", "Apidae", "Apis", "mellifera",
     "Western Honey Bee", "Insects"),
    (512, "Plantae", "Tracheophyta", "Polypodiopsida", "Polypodiales", "Dennstaedtiaceae",
     "Pteridium", "aquilinum", "Common Bracken", "Plants"),
    (4093, "Fungi", "Ascomycota", "Pezizomycetes", "Pezizales", "Morchellaceae", "Morchella",
     "esculenta", "Yellow Morel", "Fungi"),
    (17, "Animalia", "Arthropoda", "Insecta", "Coleoptera", "Coccinellidae", "Coccinella",
     "septempunctata", "Seven-spotted Lady Beetle", "Insects"),
    (230, "Plantae", "Tracheophyta", "Magnoliopsida", "Asterales", "Asteraceae", "Taraxacum",
     "officinale", "Common Dandelion", "Plants"),
    (1024, "Fungi", "Basidiomycota", "Agaricomycetes", "Polyporales", "Polyporaceae",
     "Trametes", "versicolor", "Turkey Tail", "Fungi"),
    (101, "Animalia", "Arthropoda", "Insecta", "Odonata", "Libellulidae", "Libellula",
     "luctuosa", "Widow Skimmer", "Insects"),
    (777, "Plantae", "Tracheophyta", "Magnoliopsida", "Asterales", "Asteraceae", "Helianthus",
     "annuus", "Common Sunflower", "Plants"),
    (1500, "Fungi", "Basidiomycota", "Agaricomycetes", "Cantharellales", "Hydnaceae",
     "Cantharellus", "cibarius", "Golden Chanterelle", "Fungi"),
)
_TEXTURES = ("hstripes", "vstripes", "checker", "dots", "rings", "diagonal")
_HUES = (0.0, 30.0, 58.0, 120.0, 210.0, 285.0)  # red, orange, yellow, green, blue, purple
# Train counts by rank, geometric from 80 to 6 (sum 363), and the rank of each _TAXA row:
# the most frequent class is neither the first listed nor the smallest id.
_TRAIN_COUNTS = (80, 63, 50, 40, 31, 25, 20, 16, 12, 10, 8, 6)
_RANK = (4, 0, 7, 2, 10, 5, 1, 9, 3, 11, 6, 8)

# Awkward train files: kind -> (row in _TAXA, index of the image within that class).
AWKWARD_KINDS = ("grayscale", "png_as_jpg", "exif_rotated", "cmyk", "truncated")
_AWKWARD_AT = {"grayscale": (1, 0), "png_as_jpg": (3, 0), "exif_rotated": (1, 1),
               "cmyk": (8, 0), "truncated": (4, 0)}

_LICENSES = (
    (1, "Attribution-NonCommercial-ShareAlike License",
     "http://creativecommons.org/licenses/by-nc-sa/4.0/"),
    (2, "Attribution-NonCommercial License", "http://creativecommons.org/licenses/by-nc/4.0/"),
    (3, "Attribution License", "http://creativecommons.org/licenses/by/4.0/"),
    (4, "CC0 1.0 Universal (CC0 1.0) Public Domain Dedication",
     "https://creativecommons.org/publicdomain/zero/1.0/"),
)
_RIGHTS_HOLDERS = ("Ada Lovelace", "Carl Linnaeus", "Maria Sibylla Merian", "Alfred Wallace",
                   "Rachel Carson", "Ynes Mexia")


@dataclasses.dataclass(frozen=True)
class SampleDataset:
    root: str  # absolute
    annotations: dict[str, str]  # split ("train", "val") -> annotation JSON path
    images_root: str  # `file_name` in the JSONs is relative to this
    awkward: dict[str, str] = dataclasses.field(default_factory=dict)  # file_name -> kind


def ensure_sample(root: str = DEFAULT_SAMPLE_ROOT, *, seed: int = 0,
                  scale: float = 1.0) -> SampleDataset:
    """Returns the sample at root, generating it first unless a complete one is there.

    The sample is built in a temporary folder next to root and renamed into place, so a crash
    never leaves a half sample behind; a folder without the marker (or from another version or
    seed) is replaced.
    """
    options = {"version": SAMPLE_VERSION, "seed": seed, "scale": scale}
    existing = _load_complete(root, options)
    if existing is not None:
        logger.info("Using the sample dataset at %s", existing.root)
        return existing
    parent = os.path.dirname(os.path.abspath(root))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(root))}.tmp-", dir=parent)
    try:
        generate_sample(tmp, seed=seed, scale=scale)
        if os.path.exists(root):
            logger.warning("Replacing the incomplete or outdated sample at %s", root)
            shutil.rmtree(root)
        try:
            os.rename(tmp, root)
        except OSError:
            # Another process finished first (rename onto a non-empty folder fails): use theirs.
            existing = _load_complete(root, options)
            if existing is None:
                raise
            return existing
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    sample = _load_complete(root, options)
    assert sample is not None, "the marker is written by generate_sample"
    logger.info("Sample dataset ready at %s", sample.root)
    return sample


def generate_sample(root: str, *, seed: int = 0, scale: float = 1.0) -> SampleDataset:
    """Writes the sample into root (new or empty; created if needed) and returns it.

    The marker goes last. Prefer ensure_sample, which makes this atomic.

    scale multiplies the per-class counts (at least 1 val and 2 train images per class): a
    smaller sample for quick tests.
    """
    start = time.perf_counter()
    os.makedirs(root, exist_ok=True)
    categories = [_category(row) for row in range(len(_TAXA))]
    awkward: dict[str, str] = {}
    num_bytes = 0
    next_image_id = 1
    for split_index, split in enumerate(SPLITS):
        images, annotations = [], []
        for row, category in enumerate(categories):
            count = _count(split, row, scale)
            for index in range(count):
                rng = np.random.default_rng([seed, split_index, row, index])
                kind = _awkward_kind(split, row, index)
                file_name = (f"{split}/{category['image_dir_name']}/"
                             f"{uuid.UUID(bytes=rng.bytes(16), version=4)}.jpg")
                pixels = draw_image(row, rng)
                data = _encode(pixels, kind)
                path = os.path.join(root, file_name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)
                num_bytes += len(data)
                if kind != "normal":
                    awkward[file_name] = kind
                images.append(_image_entry(file_name, pixels.shape, rng))
                annotations.append({"category_id": category["id"]})
        # Ids in a shuffled order, so neither list is grouped by class in id order; annotation
        # ids differ from image ids and the annotation list keeps class order: a join by list
        # position would go wrong.
        order = np.random.default_rng([seed, split_index, 99]).permutation(len(images))
        for position, i in enumerate(order):
            images[i]["id"] = next_image_id + position
        for i, annotation in enumerate(annotations):
            annotation.update(id=500_000 + next_image_id + i, image_id=images[i]["id"])
        next_image_id += len(images)
        images.sort(key=lambda image: image["id"])
        document = {
            "info": _INFO,
            "images": images,
            "categories": categories,
            "annotations": [{k: a[k] for k in ("id", "image_id", "category_id")}
                            for a in annotations],
            "licenses": [{"id": i, "name": n, "url": u} for i, n, u in _LICENSES],
        }
        with open(os.path.join(root, f"{split}.json"), "w", encoding="utf-8") as f:
            json.dump(document, f)
        logger.info("Sample %s split: %d images, %d classes", split, len(images), len(categories))
    marker = {"version": SAMPLE_VERSION, "seed": seed, "scale": scale, "awkward": awkward}
    with open(os.path.join(root, MARKER), "w", encoding="utf-8") as f:
        json.dump(marker, f, indent=1, sort_keys=True)
    logger.info("Generated the sample dataset at %s: %.1f MB of images in %.1f s", root,
                num_bytes / 1e6, time.perf_counter() - start)
    return _dataset(root, awkward)


def class_visual(row: int) -> tuple[str, float]:
    """(texture, hue in degrees) of the class in _TAXA row `row`: all 12 pairs differ, and each
    texture and each hue is shared by two classes, so neither alone identifies a class."""
    texture = row % len(_TEXTURES)
    hue = (row + 3 * (row // len(_TEXTURES))) % len(_HUES)
    return _TEXTURES[texture], _HUES[hue]


def draw_image(row: int, rng: np.random.Generator) -> np.ndarray:
    """(h, w, 3) uint8: an ellipse of the class's texture and hue on a noisy background."""
    longer = int(rng.integers(300, 501))
    aspect = float(rng.choice([1.0, 1.25, 4 / 3, 1.5, 16 / 9]))
    w, h = longer, round(longer / aspect)
    if rng.random() < 0.3:
        w, h = h, w  # portrait
    # Drawn at half size and upscaled: 4x less numpy work, and soft edges like a lens gives.
    hw, hh = (w + 1) // 2, (h + 1) // 2
    y = np.arange(hh, dtype=np.float32)[:, None]
    x = np.arange(hw, dtype=np.float32)[None, :]

    # Background: a desaturated colour with low-frequency variation (mottled, like foliage or
    # soil), never as saturated as a class colour.
    base = _rgb(rng.uniform(0, 360), rng.uniform(0.05, 0.35), rng.uniform(0.3, 0.75))
    blotches = rng.normal(0, 22, size=(3, 4, 3)) + base
    image = np.asarray(Image.fromarray(np.clip(blotches, 0, 255).astype(np.uint8)).resize(
        (hw, hh), Image.Resampling.BILINEAR), dtype=np.float32)

    # The subject: an ellipse filled with the texture, randomly placed and sized.
    texture, hue = class_visual(row)
    cx, cy = rng.uniform(0.3, 0.7) * hw, rng.uniform(0.3, 0.7) * hh
    rx, ry = rng.uniform(0.25, 0.45) * hw, rng.uniform(0.25, 0.45) * hh
    inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1.0
    period = rng.uniform(0.09, 0.15) * longer / 2  # 6-10 px at 64 px: visible to a small CNN
    angle = np.deg2rad(rng.uniform(-12, 12) + (45 if texture == "diagonal" else 0))
    cos, sin = float(np.cos(angle)), float(np.sin(angle))  # Python floats keep float32 arrays
    u = (x - cx) * cos + (y - cy) * sin
    v = (y - cy) * cos - (x - cx) * sin
    phase = rng.uniform(0, period)
    if texture in ("hstripes", "diagonal"):
        on = np.sin(2 * np.pi * (v + phase) / period) > 0
    elif texture == "vstripes":
        on = np.sin(2 * np.pi * (u + phase) / period) > 0
    elif texture == "checker":
        on = (np.floor((u + phase) / period) + np.floor((v + phase) / period)) % 2 == 0
    elif texture == "dots":
        du = (u + phase) % period - period / 2
        dv = (v + phase) % period - period / 2
        on = du * du + dv * dv < (0.3 * period) ** 2
    else:  # rings
        on = np.sin(2 * np.pi * (np.sqrt(u * u + v * v) + phase) / period) > 0
    hue += rng.uniform(-10, 10)
    light = _rgb(hue, rng.uniform(0.65, 0.95), rng.uniform(0.75, 0.95))
    dark = _rgb(hue, rng.uniform(0.6, 0.9), rng.uniform(0.25, 0.4))
    image = np.where(inside[..., None], np.where(on[..., None], light, dark), image)

    # Distractors: a couple of small plain shapes of any colour, over or near the subject.
    for _ in range(int(rng.integers(0, 3))):
        dx, dy = rng.uniform(0, hw), rng.uniform(0, hh)
        r = rng.uniform(0.04, 0.09) * longer / 2
        spot = (x - dx) ** 2 + (y - dy) ** 2 < r * r
        image[spot] = _rgb(rng.uniform(0, 360), rng.uniform(0.2, 0.7), rng.uniform(0.3, 0.9))

    image *= rng.uniform(0.85, 1.15)  # exposure
    image += rng.standard_normal((hh, hw, 1), dtype=np.float32) * 5  # grain
    small = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    return np.asarray(small.resize((w, h), Image.Resampling.BILINEAR))


def _rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb((hue % 360) / 360, saturation, value)
    return np.array([r, g, b], dtype=np.float32) * 255


def _awkward_kind(split: str, row: int, index: int) -> str:
    if split == "train":
        for kind, at in _AWKWARD_AT.items():
            if at == (row, index):
                return kind
    return "normal"


def _encode(pixels: np.ndarray, kind: str) -> bytes:
    """The file's bytes; awkward kinds still show the same upright picture once decoded."""
    img = Image.fromarray(pixels)
    out = io.BytesIO()
    if kind == "grayscale":
        img.convert("L").save(out, "JPEG", quality=JPEG_QUALITY)
    elif kind == "png_as_jpg":
        img.save(out, "PNG")
    elif kind == "exif_rotated":
        # Stored as a camera held sideways writes it: pixels rotated, orientation 6 ("rotate
        # 90 degrees clockwise to display") restores the picture.
        exif = Image.Exif()
        exif[0x0112] = 6
        img.transpose(Image.Transpose.ROTATE_90).save(out, "JPEG", quality=JPEG_QUALITY,
                                                       exif=exif.tobytes())
    elif kind == "cmyk":
        img.convert("CMYK").save(out, "JPEG", quality=JPEG_QUALITY)
    else:
        # Some progressive JPEGs among the baseline ones, as on the web.
        img.save(out, "JPEG", quality=JPEG_QUALITY, progressive=pixels.shape[0] % 5 == 0)
    data = out.getvalue()
    if kind == "truncated":
        return data[: len(data) * 3 // 5]  # an interrupted download
    return data


def _count(split: str, row: int, scale: float) -> int:
    if split == "train":
        return max(2, round(_TRAIN_COUNTS[_RANK[row]] * scale))
    return max(1, round((8 + row % 3) * scale))


def _category(row: int) -> dict[str, Any]:
    cid, kingdom, phylum, klass, order, family, genus, epithet, common, supercategory = _TAXA[row]
    return {
        "id": cid,
        "name": f"{genus} {epithet}",
        "common_name": common,
        "supercategory": supercategory,
        "kingdom": kingdom,
        "phylum": phylum,
        "class": klass,
        "order": order,
        "family": family,
        "genus": genus,
        "specific_epithet": epithet,
        "image_dir_name": "_".join((f"{cid:05d}", kingdom, phylum, klass, order, family, genus,
                                    epithet)),
    }


def _image_entry(file_name: str, shape: tuple[int, ...], rng: np.random.Generator) -> dict:
    """An `images` entry without its id; some location fields are null, as in the real files."""
    located = rng.random() > 0.1
    return {
        "id": None,  # assigned once the split's order is shuffled
        "width": int(shape[1]),
        "height": int(shape[0]),
        "file_name": file_name,
        "license": int(rng.integers(1, len(_LICENSES) + 1)),
        "rights_holder": str(rng.choice(_RIGHTS_HOLDERS)),
        "date": (f"{rng.integers(2008, 2021)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}"
                 f" {rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}:{rng.integers(0, 60):02d}"
                 "+00:00"),
        "latitude": round(float(rng.uniform(-60, 70)), 6) if located else None,
        "longitude": round(float(rng.uniform(-180, 180)), 6) if located else None,
        "location_uncertainty": (int(rng.integers(3, 5000))
                                 if located and rng.random() > 0.2 else None),
    }


_INFO = {
    "year": 2021,
    "version": f"sample-{SAMPLE_VERSION}",
    "description": "Synthetic sample in the iNaturalist 2021 annotation layout "
                   "(generated by pipeline/sample.py; images are drawn, not photographed)",
    "contributor": "inat-tfrecords",
    "url": "https://github.com/visipedia/inat_comp/tree/master/2021",
    "date_created": "2021-01-01 00:00:00",
}


def _dataset(root: str, awkward: dict[str, str]) -> SampleDataset:
    root = os.path.abspath(root)
    return SampleDataset(
        root=root,
        annotations={split: os.path.join(root, f"{split}.json") for split in SPLITS},
        images_root=root,
        awkward=dict(awkward),
    )


def _load_complete(root: str, options: dict[str, Any]) -> SampleDataset | None:
    """The sample at root if its marker says it is complete and made with these options."""
    try:
        with open(os.path.join(root, MARKER), encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None  # absent, unreadable or half-written marker: not complete
    if any(marker.get(key) != value for key, value in options.items()):
        return None
    return _dataset(root, marker.get("awkward", {}))

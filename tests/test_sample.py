"""pipeline.sample: layout, long tail, decodable images, awkward files, determinism, atomicity."""

import collections
import json
import os
import re

import pytest
from PIL import Image

from pipeline import sample as sample_lib
from pipeline.images import ImageError, normalize_image
from pipeline.records import UNDECODABLE_IMAGE

IMAGE_KEYS = {"id", "width", "height", "file_name", "license", "rights_holder", "date",
              "latitude", "longitude", "location_uncertainty"}
CATEGORY_KEYS = {"id", "name", "common_name", "supercategory", "kingdom", "phylum", "class",
                 "order", "family", "genus", "specific_epithet", "image_dir_name"}
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return sample_lib.generate_sample(str(tmp_path_factory.mktemp("sample")))


@pytest.fixture(scope="module")
def documents(sample):
    docs = {}
    for split, path in sample.annotations.items():
        with open(path, encoding="utf-8") as f:
            docs[split] = json.load(f)
    return docs


def all_files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files)


def class_counts(doc):
    return collections.Counter(a["category_id"] for a in doc["annotations"])


# --- layout -------------------------------------------------------------------------------------

def test_paths(sample):
    assert set(sample.annotations) == {"train", "val"}
    assert sample.annotations["train"] == os.path.join(sample.root, "train.json")
    assert sample.images_root == sample.root
    assert os.path.isabs(sample.root)


def test_json_has_the_2021_layout(documents):
    for doc in documents.values():
        assert list(doc) == ["info", "images", "categories", "annotations", "licenses"]
        assert all(set(image) == IMAGE_KEYS for image in doc["images"])
        assert all(set(c) == CATEGORY_KEYS for c in doc["categories"])
        assert all(set(a) == {"id", "image_id", "category_id"} for a in doc["annotations"])
        license_ids = {lic["id"] for lic in doc["licenses"]}
        assert all(image["license"] in license_ids for image in doc["images"])
        for c in doc["categories"]:
            assert c["name"] == f"{c['genus']} {c['specific_epithet']}"
            assert c["image_dir_name"] == "_".join(
                [f"{c['id']:05d}"] + [c[k] for k in ("kingdom", "phylum", "class", "order",
                                                     "family", "genus", "specific_epithet")])
    # Some location fields are null, as in the real files.
    images = documents["train"]["images"]
    assert any(image["latitude"] is None for image in images)
    assert any(image["location_uncertainty"] is None for image in images)
    assert any(image["location_uncertainty"] is not None for image in images)


def test_categories_exercise_joins_by_id(documents):
    categories = documents["train"]["categories"]
    ids = [c["id"] for c in categories]
    assert len(ids) == len(set(ids)) == 12
    assert ids != sorted(ids)  # listed out of id order
    assert sorted(ids) != list(range(min(ids), min(ids) + 12))  # not contiguous
    assert len({c["supercategory"] for c in categories}) == 3
    assert documents["val"]["categories"] == categories  # one label map for both splits


def test_ids_and_file_names(documents):
    image_ids = []
    for split, doc in documents.items():
        by_id = {image["id"]: image for image in doc["images"]}
        dirs = {c["id"]: c["image_dir_name"] for c in doc["categories"]}
        assert len(by_id) == len(doc["images"])
        assert sorted(a["image_id"] for a in doc["annotations"]) == sorted(by_id)  # one each
        # Annotation ids are not image ids, and the lists are in different orders.
        assert not {a["id"] for a in doc["annotations"]} & set(by_id)
        assert [a["image_id"] for a in doc["annotations"]] != [i["id"] for i in doc["images"]]
        for a in doc["annotations"]:
            assert re.fullmatch(rf"{split}/{dirs[a['category_id']]}/{UUID}\.jpg",
                                by_id[a["image_id"]]["file_name"])
        image_ids += list(by_id)
    assert len(image_ids) == len(set(image_ids))  # unique across splits too


def test_counts_are_long_tailed(documents):
    train = sorted(class_counts(documents["train"]).values(), reverse=True)
    assert len(train) == 12
    assert train[0] >= 70 and train[-1] <= 8 and train[0] >= 10 * train[-1]
    assert 350 <= sum(train) <= 450
    val = class_counts(documents["val"]).values()
    assert len(val) == 12 and all(8 <= n <= 10 for n in val)


def test_classes_have_distinct_visuals():
    visuals = [sample_lib.class_visual(row) for row in range(12)]
    assert len(set(visuals)) == 12
    # Neither the texture nor the hue alone tells a class.
    assert all(n == 2 for n in collections.Counter(t for t, _ in visuals).values())
    assert all(n == 2 for n in collections.Counter(h for _, h in visuals).values())


# --- images -------------------------------------------------------------------------------------

def test_images_decode_except_the_one_truncated(sample, documents):
    failures = {}
    total = 0
    for doc in documents.values():
        for image in doc["images"]:
            total += 1
            with open(os.path.join(sample.images_root, image["file_name"]), "rb") as f:
                data = f.read()
            try:
                result = normalize_image(data)
            except ImageError as e:
                failures[image["file_name"]] = e.reason
                continue
            # The JSON gives the upright size (after EXIF rotation), like the decoded image.
            assert (result.width, result.height) == (image["width"], image["height"])
            assert 300 <= max(result.width, result.height) <= 500
    truncated = [name for name, kind in sample.awkward.items() if kind == "truncated"]
    assert failures == {truncated[0]: UNDECODABLE_IMAGE}
    assert truncated[0].startswith("train/")
    assert len(failures) / total < 0.01


def test_awkward_files_are_what_they_claim(sample):
    assert sorted(sample.awkward.values()) == sorted(sample_lib.AWKWARD_KINDS)
    for name, kind in sample.awkward.items():
        assert name.startswith("train/") and name.endswith(".jpg")
        img = Image.open(os.path.join(sample.images_root, name))
        if kind == "grayscale":
            assert (img.format, img.mode) == ("JPEG", "L")
        elif kind == "png_as_jpg":
            assert img.format == "PNG"
        elif kind == "exif_rotated":
            assert img.format == "JPEG" and img.getexif().get(0x0112) == 6
        elif kind == "cmyk":
            assert (img.format, img.mode) == ("JPEG", "CMYK")
        else:
            assert kind == "truncated" and img.format == "JPEG"


def test_exif_rotated_file_is_stored_sideways(sample, documents):
    name = next(n for n, kind in sample.awkward.items() if kind == "exif_rotated")
    entry = next(i for i in documents["train"]["images"] if i["file_name"] == name)
    stored = Image.open(os.path.join(sample.images_root, name))
    assert stored.size == (entry["height"], entry["width"])
    assert entry["width"] != entry["height"]


def test_size_bounds(sample, documents):
    sizes = {name: os.path.getsize(os.path.join(sample.root, name))
             for name in all_files(sample.root) if name.endswith(".jpg")}
    assert len(sizes) == sum(len(doc["images"]) for doc in documents.values())  # no strays
    assert sum(sizes.values()) < 15e6
    jpeg_sizes = sorted(size for name, size in sizes.items()
                        if sample.awkward.get(name) not in ("png_as_jpg", "truncated"))
    assert jpeg_sizes[0] > 4_000 and jpeg_sizes[int(0.95 * len(jpeg_sizes))] < 40_000


# --- determinism --------------------------------------------------------------------------------

def read_tree(root):
    tree = {}
    for name in all_files(root):
        with open(os.path.join(root, name), "rb") as f:
            tree[name] = f.read()
    return tree


def test_same_seed_same_bytes(tmp_path, sample):
    first = read_tree(sample_lib.generate_sample(str(tmp_path / "a"), scale=0.1).root)
    second = read_tree(sample_lib.generate_sample(str(tmp_path / "b"), scale=0.1).root)
    assert first == second
    # Each image depends on (seed, split, class, index) only, so the small sample's images
    # are byte-identical to the full sample's, generated separately.
    full = sample.root
    for name, data in first.items():
        if name.endswith(".jpg"):
            with open(os.path.join(full, name), "rb") as f:
                assert f.read() == data, name


def test_other_seed_other_images(tmp_path):
    a = read_tree(sample_lib.generate_sample(str(tmp_path / "a"), seed=0, scale=0.05).root)
    b = read_tree(sample_lib.generate_sample(str(tmp_path / "b"), seed=1, scale=0.05).root)
    assert a["train.json"] != b["train.json"]
    assert set(a) & set(b) == {"train.json", "val.json", sample_lib.MARKER}  # new file names


# --- ensure_sample ------------------------------------------------------------------------------

def forbid_generation(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the sample was regenerated")

    monkeypatch.setattr(sample_lib, "generate_sample", fail)


def test_ensure_generates_then_reuses(tmp_path, monkeypatch):
    root = str(tmp_path / "outputs" / "sample")
    made = sample_lib.ensure_sample(root, scale=0.05)
    assert os.path.exists(os.path.join(root, sample_lib.MARKER))
    before = read_tree(root)
    forbid_generation(monkeypatch)
    reused = sample_lib.ensure_sample(root, scale=0.05)
    assert reused == made
    assert read_tree(root) == before
    assert os.listdir(tmp_path / "outputs") == ["sample"]  # no temporary folder left


@pytest.mark.parametrize("damage", ["no_marker", "old_version", "broken_marker"])
def test_ensure_regenerates_incomplete_sample(tmp_path, damage):
    root = str(tmp_path / "sample")
    expected = read_tree(sample_lib.ensure_sample(root, scale=0.05).root)
    marker = os.path.join(root, sample_lib.MARKER)
    os.remove(os.path.join(root, "val.json"))
    with open(os.path.join(root, "stray.txt"), "w", encoding="utf-8") as f:
        f.write("left by a crash")
    if damage == "no_marker":
        os.remove(marker)
    elif damage == "old_version":
        with open(marker, "w", encoding="utf-8") as f:
            json.dump({"version": sample_lib.SAMPLE_VERSION - 1, "seed": 0, "scale": 0.1}, f)
    else:
        with open(marker, "w", encoding="utf-8") as f:
            f.write('{"version": ')
    sample_lib.ensure_sample(root, scale=0.05)
    assert read_tree(root) == expected


def test_crash_during_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = []
    real_draw = sample_lib.draw_image

    def crash_after_a_few(*args):
        calls.append(1)
        if len(calls) > 5:
            raise KeyboardInterrupt("simulated crash")
        return real_draw(*args)

    monkeypatch.setattr(sample_lib, "draw_image", crash_after_a_few)
    with pytest.raises(KeyboardInterrupt):
        sample_lib.ensure_sample(str(tmp_path / "sample"), scale=0.05)
    assert os.listdir(tmp_path) == []

"""Tests for pipeline.annotations: the iNat layouts per year, the label map, the join, rejects."""

import collections
import json
import pickle
import random

import pytest

from pipeline import records
from pipeline.annotations import (AnnotationError, Category, LabelMap, build_label_map,
                                  join_annotations, parse_annotation_file)
from pipeline.records import ImageRecord, Reject

# ---------------------------------------------------------------------------------------------
# Fixtures in each year's layout (fields as in the released files; values made up).

INFO = {"year": 2021, "version": "1.0", "description": "test", "contributor": "", "url": "",
        "date_created": "2021-01-01"}
LICENSES = [{"id": 1, "name": "CC BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"}]

CATEGORIES_2017 = [
    {"id": 12, "name": "Turdus migratorius", "supercategory": "Aves"},
    {"id": 3, "name": "Danaus plexippus", "supercategory": "Insecta"},
    {"id": 40, "name": "Quercus alba", "supercategory": "Plantae"},
]

CATEGORIES_2018 = [
    {"id": 7, "name": "Quercus alba", "supercategory": "Plantae", "kingdom": "Plantae",
     "phylum": "Tracheophyta", "class": "Magnoliopsida", "order": "Fagales",
     "family": "Fagaceae", "genus": "Quercus"},
    {"id": 2, "name": "Turdus migratorius", "supercategory": "Aves", "kingdom": "Animalia",
     "phylum": "Chordata", "class": "Aves", "order": "Passeriformes", "family": "Turdidae",
     "genus": "Turdus"},
]

CATEGORIES_2019 = [  # ranks, no supercategory: kingdom stands in
    {"id": 1009, "name": "Quercus alba", "kingdom": "Plantae", "phylum": "Tracheophyta",
     "class": "Magnoliopsida", "order": "Fagales", "family": "Fagaceae", "genus": "Quercus"},
    {"id": 5, "name": "Turdus migratorius", "kingdom": "Animalia", "phylum": "Chordata",
     "class": "Aves", "order": "Passeriformes", "family": "Turdidae", "genus": "Turdus"},
]

CATEGORIES_2021 = [
    {"id": 9999, "name": "Quercus alba", "common_name": "white oak", "supercategory": "Plants",
     "kingdom": "Plantae", "phylum": "Tracheophyta", "class": "Magnoliopsida",
     "order": "Fagales", "family": "Fagaceae", "genus": "Quercus", "specific_epithet": "alba",
     "image_dir_name": "09999_Plantae_Tracheophyta_Magnoliopsida_Fagales_Fagaceae_Quercus_alba"},
    {"id": 0, "name": "Turdus migratorius", "common_name": "American Robin",
     "supercategory": "Birds", "kingdom": "Animalia", "phylum": "Chordata", "class": "Aves",
     "order": "Passeriformes", "family": "Turdidae", "genus": "Turdus",
     "specific_epithet": "migratorius",
     "image_dir_name": "00000_Animalia_Chordata_Aves_Passeriformes_Turdidae_Turdus_migratorius"},
    {"id": 501, "name": "Danaus plexippus", "common_name": None, "supercategory": "Insects",
     "kingdom": "Animalia", "phylum": "Arthropoda", "class": "Insecta", "order": "Lepidoptera",
     "family": "Nymphalidae", "genus": "Danaus", "specific_epithet": "plexippus",
     "image_dir_name": "00501_Animalia_Arthropoda_Insecta_Lepidoptera_Nymphalidae_Danaus"},
]


def image_2021(image_id, file_name, **extra):
    image = {"id": image_id, "width": 500, "height": 375, "file_name": file_name, "license": 1,
             "rights_holder": "someone", "date": "2019-06-01 10:00:00+00:00",
             "latitude": 42.1, "longitude": -71.3, "location_uncertainty": 12}
    image.update(extra)
    return image


def write_and_parse(tmp_path, name, obj):
    path = tmp_path / name
    path.write_bytes(json.dumps(obj).encode("utf-8"))
    return str(path), parse_annotation_file(path.read_bytes(), str(path))


def join(data, label_map, split="train", path="/d/train.json"):
    return list(join_annotations(data, split, path, label_map))


def split_items(items):
    written = [x for x in items if isinstance(x, ImageRecord)]
    rejected = [x for x in items if isinstance(x, Reject)]
    assert len(written) + len(rejected) == len(items)
    return written, rejected


# ---------------------------------------------------------------------------------------------
# Per-year layouts, end to end through parse -> label map -> join


def test_2017_layout_with_bbox_annotations(tmp_path):
    obj = {"info": INFO, "licenses": LICENSES, "categories": CATEGORIES_2017,
           "images": [{"id": 100, "file_name": "train_val_images/Aves/Turdus/a.jpg",
                       "width": 800, "height": 600},
                      {"id": 7, "file_name": "train_val_images/Insecta/Danaus/b.jpg",
                       "width": 640, "height": 480}],
           "annotations": [{"id": 1, "image_id": 100, "category_id": 12,
                            "bbox": [10, 20, 100, 80], "area": 8000, "iscrowd": 0},
                           {"id": 2, "image_id": 7, "category_id": 3}]}
    path, data = write_and_parse(tmp_path, "train2017.json", obj)
    label_map = build_label_map({path: data["categories"]})
    assert label_map.names() == ["Danaus plexippus", "Turdus migratorius", "Quercus alba"]
    assert label_map.supercategories == ("Aves", "Insecta", "Plantae")
    assert label_map.categories[0] == Category(3, "Danaus plexippus", "Insecta", ())
    assert join(data, label_map, path=path) == [
        ImageRecord("train", "7", "train_val_images/Insecta/Danaus/b.jpg", 3, 0,
                    "Danaus plexippus", 1),
        ImageRecord("train", "100", "train_val_images/Aves/Turdus/a.jpg", 12, 1,
                    "Turdus migratorius", 0),
    ]


def test_2018_layout_ranks(tmp_path):
    obj = {"info": INFO, "licenses": LICENSES, "categories": CATEGORIES_2018,
           "images": [{"id": 1, "file_name": "train_val2018/Plantae/7/x.jpg", "width": 800,
                       "height": 533, "license": 1, "rights_holder": "r"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 7}]}
    path, data = write_and_parse(tmp_path, "train2018.json", obj)
    label_map = build_label_map({path: data["categories"]})
    oak = label_map.categories[1]
    assert oak.category_id == 7 and oak.supercategory == "Plantae"
    assert oak.ranks == (("kingdom", "Plantae"), ("phylum", "Tracheophyta"),
                         ("class", "Magnoliopsida"), ("order", "Fagales"),
                         ("family", "Fagaceae"), ("genus", "Quercus"))
    assert join(data, label_map, path=path) == [
        ImageRecord("train", "1", "train_val2018/Plantae/7/x.jpg", 7, 1, "Quercus alba", 1)]


def test_2019_layout_falls_back_to_kingdom(tmp_path):
    obj = {"info": INFO, "licenses": LICENSES, "categories": CATEGORIES_2019,
           "images": [{"id": 265213, "file_name": "train_val2019/Plants/1009/y.jpg",
                       "width": 600, "height": 800}],
           "annotations": [{"id": 265213, "image_id": 265213, "category_id": 1009}]}
    path, data = write_and_parse(tmp_path, "train2019.json", obj)
    label_map = build_label_map({path: data["categories"]})
    assert [c.supercategory for c in label_map.categories] == ["Animalia", "Plantae"]
    assert label_map.supercategories == ("Animalia", "Plantae")
    [record] = join(data, label_map, path=path)
    assert (record.label, record.supercategory, record.category_id) == (1, 1, 1009)
    # Neither supercategory nor kingdom: the empty string.
    bare = build_label_map({"a.json": [{"id": 1, "name": "x"}]})
    assert bare.categories[0].supercategory == "" and bare.supercategories == ("",)


def test_2021_layout_with_nulls(tmp_path):
    images = [image_2021(2686842, "train/00000_Animalia_Chordata_Aves/a.jpg"),
              image_2021(17, "train/09999_Plantae_Tracheophyta/b.jpg", latitude=None,
                         longitude=None, location_uncertainty=None, date=None),
              image_2021(500, "train/00501_Animalia_Arthropoda/c.jpg", rights_holder=None,
                         license=None)]
    annotations = [{"id": 2686842, "image_id": 2686842, "category_id": 0},
                   {"id": 17, "image_id": 17, "category_id": 9999},
                   {"id": 500, "image_id": 500, "category_id": 501}]
    obj = {"info": INFO, "licenses": LICENSES, "categories": CATEGORIES_2021,
           "images": images, "annotations": annotations}
    path, data = write_and_parse(tmp_path, "train.json", obj)
    label_map = build_label_map({path: data["categories"]})
    assert label_map.names() == ["Turdus migratorius", "Danaus plexippus", "Quercus alba"]
    assert label_map.supercategories == ("Birds", "Insects", "Plants")
    assert dict(label_map.categories[0].ranks)["common_name"] == "American Robin"
    assert "common_name" not in dict(label_map.categories[1].ranks)  # null: left out
    assert [r for r, _ in label_map.categories[2].ranks] == [
        "kingdom", "phylum", "class", "order", "family", "genus", "specific_epithet",
        "common_name"]
    assert join(data, label_map, path=path) == [
        ImageRecord("train", "17", "train/09999_Plantae_Tracheophyta/b.jpg", 9999, 2,
                    "Quercus alba", 2),
        ImageRecord("train", "500", "train/00501_Animalia_Arthropoda/c.jpg", 501, 1,
                    "Danaus plexippus", 1),
        ImageRecord("train", "2686842", "train/00000_Animalia_Chordata_Aves/a.jpg", 0, 0,
                    "Turdus migratorius", 0),
    ]


# ---------------------------------------------------------------------------------------------
# Label map


def test_label_map_order_lookup_and_rows():
    label_map = build_label_map({"/d/train.json": CATEGORIES_2021})
    assert label_map.num_classes == 3
    assert [c.category_id for c in label_map.categories] == [0, 501, 9999]
    assert [label_map.index(i) for i in (0, 501, 9999)] == [0, 1, 2]
    assert [label_map.supercategory_index(i) for i in (0, 501, 9999)] == [0, 1, 2]
    with pytest.raises(KeyError, match="category id 42"):
        label_map.index(42)
    with pytest.raises(KeyError):
        label_map.supercategory_index(42)
    rows = label_map.rows()
    assert rows[0] == {"index": 0, "category_id": 0, "name": "Turdus migratorius",
                       "supercategory": "Birds", "supercategory_index": 0,
                       "kingdom": "Animalia", "phylum": "Chordata", "class": "Aves",
                       "order": "Passeriformes", "family": "Turdidae", "genus": "Turdus",
                       "specific_epithet": "migratorius", "common_name": "American Robin"}
    assert [r["index"] for r in rows] == [0, 1, 2]
    assert "common_name" not in rows[1] and "image_dir_name" not in rows[2]
    json.dumps(rows)  # label_map.json must be serialisable


def test_label_map_shared_supercategory_and_pickle():
    cats = [{"id": 30, "name": "c", "supercategory": "Z"}, {"id": 10, "name": "a",
            "supercategory": "Y"}, {"id": 20, "name": "b", "supercategory": "Z"}]
    label_map = build_label_map({"x.json": cats})
    assert label_map.supercategories == ("Y", "Z")
    assert [label_map.supercategory_index(i) for i in (10, 20, 30)] == [0, 1, 1]
    # Beam ships the label map to workers as a side input.
    clone = pickle.loads(pickle.dumps(label_map))
    assert clone == label_map and clone.index(30) == 2 and hash(clone) == hash(label_map)


def test_label_map_same_for_all_split_orders():
    a = build_label_map({"/d/train.json": CATEGORIES_2021, "/d/val.json": CATEGORIES_2021[::-1]})
    b = build_label_map({"/d/val.json": CATEGORIES_2021[::-1], "/d/train.json": CATEGORIES_2021})
    assert a == b and a.names() == ["Turdus migratorius", "Danaus plexippus", "Quercus alba"]


def test_label_map_disagreeing_splits():
    other_ids = CATEGORIES_2017[:2] + [{"id": 41, "name": "Quercus alba", "supercategory": "P"}]
    with pytest.raises(AnnotationError) as e:
        build_label_map({"/d/train.json": CATEGORIES_2017, "/d/val.json": other_ids})
    message = str(e.value)
    assert "/d/train.json" in message and "/d/val.json" in message
    assert "category id 40 is in /d/train.json but not in /d/val.json" in message

    fewer = CATEGORIES_2017[:2]
    with pytest.raises(AnnotationError, match="category id 40 is in /d/a.json but not in /d/b"):
        build_label_map({"/d/b.json": fewer, "/d/a.json": CATEGORIES_2017})

    renamed = [dict(c) for c in CATEGORIES_2017]
    renamed[1]["name"] = "Danaus gilippus"
    with pytest.raises(AnnotationError) as e:
        build_label_map({"/d/train.json": CATEGORIES_2017, "/d/val.json": renamed})
    assert ("category id 3 is named 'Danaus plexippus' in /d/train.json but 'Danaus gilippus' "
            "in /d/val.json") in str(e.value)


def test_label_map_rank_differences_only_warn(caplog):
    no_ranks = [{"id": c["id"], "name": c["name"], "supercategory": c["supercategory"]}
                for c in CATEGORIES_2021]
    label_map = build_label_map({"/d/train.json": CATEGORIES_2021, "/d/val.json": no_ranks})
    assert dict(label_map.categories[0].ranks)["genus"] == "Turdus"  # first path's values
    assert "3 categories differ in supercategory or ranks" in caplog.text


@pytest.mark.parametrize("categories,match", [
    ([], "'categories' is empty"),
    ([{"id": 1, "name": "a"}, {"id": 1, "name": "b"}], "category id 1 appears more than once"),
    ([{"name": "a"}], r"categories\[0\] has no 'id'"),
    ([{"id": "1", "name": "a"}], r"categories\[0\] has id '1', expected an integer"),
    ([{"id": 1}], r"categories\[0\] \(id 1\) has no string 'name'"),
    ([{"id": 1, "name": "a\nb"}], "line break"),
    (["a"], r"categories\[0\] is a JSON string"),
    ({"id": 1}, "'categories' is a JSON object, expected a list"),
])
def test_label_map_bad_categories(categories, match):
    with pytest.raises(AnnotationError, match=match) as e:
        build_label_map({"/d/train.json": categories})
    assert str(e.value).startswith("/d/train.json: ")


def test_label_map_needs_a_file():
    with pytest.raises(AnnotationError, match="no annotation files"):
        build_label_map({})


def test_label_map_rejects_unsorted_construction():
    with pytest.raises(ValueError, match="sorted"):
        LabelMap((Category(2, "b", "", ()), Category(1, "a", "", ())), ("",))


# ---------------------------------------------------------------------------------------------
# Parsing errors: fatal, naming the file


@pytest.mark.parametrize("content,match", [
    (b"", "is empty"),
    (b'{"images": [],\n "categories": []\n "annotations": []}',
     r"not valid JSON \(line 3, column 2: Expecting ',' delimiter\)"),
    (b'{"images": [', r"not valid JSON \(line 1, column 13"),
    (b"\xff\xfe\x00garbage", "not valid JSON"),
    (b"<html><body>404 Not Found</body></html>", "not valid JSON"),
    (b"[1, 2]", "top level is a JSON array, expected an object"),
    (b'"images"', "top level is a JSON string"),
    (b'{"categories": []}', "has no 'images' key"),
    (b'{"images": []}', "has no 'categories' key"),
    (b'{"images": {}, "categories": []}', "'images' is a JSON object, expected a list"),
    (b'{"images": [], "categories": null}', "'categories' is a JSON null, expected a list"),
    (b'{"images": [], "categories": [], "annotations": 3}', "'annotations' is a JSON number"),
])
def test_parse_errors_name_the_file(tmp_path, content, match):
    path = tmp_path / "val.json"
    path.write_bytes(content)
    with pytest.raises(AnnotationError, match=match) as e:
        parse_annotation_file(path.read_bytes(), str(path))
    assert str(e.value).startswith(f"{path}: ")
    assert isinstance(e.value, ValueError)


def test_parse_keeps_missing_annotations_for_join(tmp_path):
    # A test-set file parses; join_annotations is what refuses it.
    test_set = {"info": INFO, "licenses": LICENSES, "categories": CATEGORIES_2021,
                "images": [image_2021(1, "public_test/a.jpg")]}
    path, data = write_and_parse(tmp_path, "public_test.json", test_set)
    assert data["images"][0]["id"] == 1 and "annotations" not in data
    label_map = build_label_map({path: data["categories"]})
    for annotations in ("missing", [], None):
        if annotations != "missing":
            data = {**data, "annotations": annotations}
        with pytest.raises(AnnotationError) as e:
            join_annotations(data, "test", path, label_map)  # raised eagerly, not on iteration
        assert str(e.value) == (f"{path}: has no annotations (a test-set file?); only labelled "
                                "splits can be built")


def test_join_refuses_file_without_images():
    label_map = build_label_map({"/d/a.json": CATEGORIES_2017})
    data = {"images": [], "categories": CATEGORIES_2017,
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3}]}
    with pytest.raises(AnnotationError, match="^/d/a.json: has no images"):
        join_annotations(data, "train", "/d/a.json", label_map)


# ---------------------------------------------------------------------------------------------
# The join: by id, deterministic, every reject case, and the invariant


CATS = [{"id": 1000, "name": "c1000", "supercategory": "B"},
        {"id": 7, "name": "c7", "supercategory": "A"},
        {"id": 55, "name": "c55", "supercategory": "B"}]


def plain_images(ids):
    return [{"id": i, "file_name": f"img/{i}.jpg", "width": 10, "height": 10} for i in ids]


def test_join_by_id_not_position():
    label_map = build_label_map({"/d/train.json": CATS})
    images = plain_images([30, 4, 1000, 2, 19])
    annotations = [{"id": 900 + k, "image_id": i, "category_id": c}
                   for k, (i, c) in enumerate([(2, 55), (1000, 7), (4, 1000), (19, 7), (30, 55)])]
    expected = [ImageRecord("train", "2", "img/2.jpg", 55, 1, "c55", 1),
                ImageRecord("train", "4", "img/4.jpg", 1000, 2, "c1000", 1),
                ImageRecord("train", "19", "img/19.jpg", 7, 0, "c7", 0),
                ImageRecord("train", "30", "img/30.jpg", 55, 1, "c55", 1),
                ImageRecord("train", "1000", "img/1000.jpg", 7, 0, "c7", 0)]
    rng = random.Random(0)
    for _ in range(5):
        rng.shuffle(images)
        rng.shuffle(annotations)
        cats = CATS[:]
        rng.shuffle(cats)
        assert build_label_map({"/d/train.json": cats}) == label_map
        data = {"images": images, "annotations": annotations, "categories": cats}
        assert join(data, label_map) == expected


def test_join_string_image_ids_and_sort_order():
    label_map = build_label_map({"/d/train.json": CATS})
    images = plain_images(["b", 10, "a", 9, "-3"])
    annotations = [{"id": k, "image_id": image["id"], "category_id": 7}
                   for k, image in enumerate(images)]
    annotations[3]["image_id"] = "9"  # ids compare as strings: "9" is image 9
    written = join({"images": images, "annotations": annotations}, label_map)
    assert [r.image_id for r in written] == ["-3", "9", "10", "a", "b"]
    assert all(isinstance(r, ImageRecord) for r in written)


def reasons(rejects):
    return collections.Counter(r.reason for r in rejects)


def test_unknown_category():
    label_map = build_label_map({"/d/train.json": CATS})
    data = {"images": plain_images([1, 2, 3, 4]),
            "annotations": [{"id": 1, "image_id": 1, "category_id": 8},
                            {"id": 2, "image_id": 2, "category_id": 7},
                            {"id": 3, "image_id": 3},
                            {"id": 4, "image_id": 4, "category_id": "7"}]}
    written, rejected = split_items(join(data, label_map))
    assert [r.image_id for r in written] == ["2"]
    assert reasons(rejected) == {records.UNKNOWN_CATEGORY: 3}
    by_image = {r.image_id: r for r in rejected}
    assert by_image["1"].category_id == 8 and by_image["1"].file_name == "img/1.jpg"
    assert by_image["1"].detail == ("/d/train.json: annotation id 1 (image id 1) names a category "
                                    "id that is not in 'categories' (8)")
    assert "has no usable category_id ('missing')" in by_image["3"].detail
    assert "has no usable category_id ('7')" in by_image["4"].detail
    assert by_image["4"].category_id is None


def test_unknown_image():
    label_map = build_label_map({"/d/train.json": CATS})
    data = {"images": plain_images([1]),
            "annotations": [{"id": 1, "image_id": 1, "category_id": 7},
                            {"id": 2, "image_id": 99, "category_id": 55},
                            {"id": 3, "category_id": 55},
                            {"id": 4, "image_id": None, "category_id": 55},
                            "not an annotation"]}
    written, rejected = split_items(join(data, label_map))
    assert len(written) == 1
    assert reasons(rejected) == {records.UNKNOWN_IMAGE: 4}
    assert rejected[0] == Reject("train", records.UNKNOWN_IMAGE,
                                 "/d/train.json: annotation id 2 refers to image id 99, which is "
                                 "not in 'images'", image_id="99", category_id=55)
    assert "annotation id 3 has no usable image_id ('missing')" in rejected[1].detail
    assert "annotation id 4 has no usable image_id (None)" in rejected[2].detail
    assert "annotations[4] is a JSON string, not an object" in rejected[3].detail


def test_duplicate_image_ids():
    label_map = build_label_map({"/d/train.json": CATS})
    images = plain_images([1, 2, 3]) + [{"id": 2, "file_name": "img/2b.jpg"},
                                        {"id": 3, "file_name": "img/3b.jpg"},
                                        {"id": "3", "file_name": "img/3c.jpg"}]
    data = {"images": images,
            "annotations": [{"id": 10, "image_id": 1, "category_id": 7},
                            {"id": 11, "image_id": 2, "category_id": 7},
                            {"id": 12, "image_id": 2, "category_id": 55}]}
    written, rejected = split_items(join(data, label_map))
    assert [r.image_id for r in written] == ["1"]
    # Both annotations of image 2 are rejected; image 3 (no annotation) is reported once.
    assert [(r.reason, r.image_id, r.category_id) for r in rejected] == [
        (records.DUPLICATE_IMAGE_ID, "2", 7), (records.DUPLICATE_IMAGE_ID, "2", 55),
        (records.DUPLICATE_IMAGE_ID, "3", None)]
    assert ("annotation id 11 refers to an ambiguous image: image id 2 appears 2 times in "
            "'images' (file names 'img/2.jpg', 'img/2b.jpg')") in rejected[0].detail
    assert rejected[2].detail == ("/d/train.json: image id 3 appears 3 times in 'images' "
                                  "(file names 'img/3.jpg', 'img/3b.jpg', 'img/3c.jpg')")


def test_multiple_annotations_keep_lowest_annotation_id():
    label_map = build_label_map({"/d/train.json": CATS})
    annotations = [{"id": 31, "image_id": 5, "category_id": 55},
                   {"id": 30, "image_id": 5, "category_id": 7},
                   {"id": 32, "image_id": 5, "category_id": 7},
                   {"id": 29, "image_id": 5, "category_id": 12345},  # invalid: not a candidate
                   {"image_id": 6, "category_id": 55},  # no id: ranks after those with one
                   {"id": 40, "image_id": 6, "category_id": 1000}]
    for order in (annotations, annotations[::-1]):
        data = {"images": plain_images([5, 6]), "annotations": order}
        written, rejected = split_items(join(data, label_map))
        assert [(r.image_id, r.category_id) for r in written] == [("5", 7), ("6", 1000)]
        assert sorted((r.reason, r.image_id, r.category_id) for r in rejected) == [
            (records.MULTIPLE_ANNOTATIONS, "5", 7), (records.MULTIPLE_ANNOTATIONS, "5", 55),
            (records.MULTIPLE_ANNOTATIONS, "6", 55), (records.UNKNOWN_CATEGORY, "5", 12345)]
    details = {r.detail for r in rejected}
    assert ("/d/train.json: annotation id 32 is another annotation of image id 5; annotation id "
            "30 was written instead (same category)") in details
    assert ("/d/train.json: annotation id 31 is another annotation of image id 5; annotation id "
            "30 was written instead (category 7, not 55)") in details


def test_unannotated_and_unusable_images():
    label_map = build_label_map({"/d/train.json": CATS})
    data = {"images": plain_images([1, 2]) + [{"file_name": "img/noid.jpg"},
                                              {"id": [1], "file_name": "img/listid.jpg"}, 4,
                                              {"id": 3}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 7},
                            {"id": 2, "image_id": 3, "category_id": 7}]}
    written, rejected = split_items(join(data, label_map))
    assert [r.image_id for r in written] == ["1"]
    assert [(r.reason, r.image_id, r.file_name) for r in rejected] == [
        (records.UNANNOTATED_IMAGE, "2", "img/2.jpg"),
        (records.MISSING_FILE, "3", None),
        (records.UNANNOTATED_IMAGE, None, "img/noid.jpg"),
        (records.UNANNOTATED_IMAGE, None, "img/listid.jpg"),
        (records.UNANNOTATED_IMAGE, None, None)]
    assert rejected[0].detail == "/d/train.json: image id 2 ('img/2.jpg') has no annotation"
    assert "refers to image id 3, which has no file_name in 'images'" in rejected[1].detail
    assert "images[2] has no usable id (missing)" in rejected[2].detail
    assert "images[3] has no usable id ([1])" in rejected[3].detail
    assert "images[4] has no usable id (a JSON number)" in rejected[4].detail


def test_split_name_on_every_item():
    label_map = build_label_map({"/d/val.json": CATS})
    data = {"images": plain_images([1, 2]),
            "annotations": [{"id": 1, "image_id": 1, "category_id": 7}]}
    items = list(join_annotations(data, "val", "/d/val.json", label_map))
    assert [x.split for x in items] == ["val", "val"]


def messy_file(seed):
    """A file with every kind of problem, in shuffled order, and its expected counts."""
    rng = random.Random(seed)
    cat_ids = [7, 55, 1000]
    images = plain_images(range(200))
    # Duplicate ids, with file names of their own.
    images += [{"id": rng.randrange(200), "file_name": f"dup/{k}.jpg"} for k in range(10)]
    images += [{"file_name": "img/noid.jpg"}, {"id": 500}]  # no id; no file_name
    annotations = []
    for i in range(205):  # 200..204 are unknown images
        if rng.random() < 0.1:
            continue  # unannotated image
        for _ in range(1 + (rng.random() < 0.15)):  # some images get two annotations
            category = rng.choice(cat_ids) if rng.random() > 0.05 else 3  # 3: unknown category
            annotations.append({"image_id": i, "category_id": category})
    annotations.append({"image_id": 500, "category_id": 7})
    annotations.append({"category_id": 7})  # no image_id
    ids = list(range(len(annotations)))
    rng.shuffle(ids)
    for ann, ann_id in zip(annotations, ids):
        ann["id"] = ann_id
    rng.shuffle(images)
    rng.shuffle(annotations)
    return {"images": images, "annotations": annotations, "categories": CATS}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_invariant_every_annotation_and_image_accounted_for(seed):
    data = messy_file(seed)
    label_map = build_label_map({"/d/train.json": data["categories"]})
    items = join(data, label_map)
    written, rejected = split_items(items)
    path = "/d/train.json"
    assert all(r.detail.startswith((f"{path}: annotation ", f"{path}: image ")) for r in rejected)
    per_annotation = [r for r in rejected if r.detail.startswith(f"{path}: annotation ")]
    per_image = [r for r in rejected if r.detail.startswith(f"{path}: image ")]
    # Every annotation is written or rejected exactly once ...
    assert len(written) + len(per_annotation) == len(data["annotations"])
    got = collections.Counter([(r.image_id, r.category_id) for r in written + per_annotation])
    want = collections.Counter(
        (None if "image_id" not in a else str(a["image_id"]), a["category_id"])
        for a in data["annotations"])
    assert got == want
    # ... every image id is written at most once, and an image not written is reported.
    written_ids = [r.image_id for r in written]
    assert len(written_ids) == len(set(written_ids))
    all_ids = {str(im["id"]) for im in data["images"] if "id" in im}
    reported_ids = {r.image_id for r in rejected}
    assert all_ids - set(written_ids) <= reported_ids
    assert sum(1 for im in data["images"] if "id" not in im) == sum(
        1 for r in per_image if r.image_id is None)
    # Per-image rejects are only for images that no annotation accounts for.
    assert {r.reason for r in per_image} <= {records.UNANNOTATED_IMAGE,
                                             records.DUPLICATE_IMAGE_ID}
    assert not ({r.image_id for r in per_image} & {r.image_id for r in per_annotation}) - {None}
    # Every kind of problem is exercised by the fixture.
    assert set(reasons(rejected)) == {
        records.UNKNOWN_CATEGORY, records.UNKNOWN_IMAGE, records.DUPLICATE_IMAGE_ID,
        records.MULTIPLE_ANNOTATIONS, records.UNANNOTATED_IMAGE, records.MISSING_FILE}
    assert all(r.reason in records.REASONS for r in rejected)
    # Records carry the label map's view of their category.
    for r in written:
        assert (r.label, r.supercategory) == (label_map.index(r.category_id),
                                              label_map.supercategory_index(r.category_id))
        assert r.label_text == label_map.names()[r.label]


def test_output_independent_of_list_order():
    data = messy_file(3)
    label_map = build_label_map({"/d/train.json": data["categories"]})
    first = join(data, label_map)
    rng = random.Random(4)
    for _ in range(3):
        rng.shuffle(data["images"])
        rng.shuffle(data["annotations"])
        # Only the image without a usable id is named by its list position.
        again = join(data, label_map)
        assert len(again) == len(first)
        assert [x for x in again if "images[" not in str(x)] == [
            x for x in first if "images[" not in str(x)]

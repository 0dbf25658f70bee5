"""The build's PTransforms on Beam's TestPipeline, checked with assert_that."""

from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs import transforms
from pipeline import annotations, records, sharding
from pipeline.records import ImageRecord, Reject
from tests import imagefixtures


def _label_map():
    return annotations.build_label_map({"a.json": [{"id": 7, "name": "b"}, {"id": 3, "name": "a"}]})


def test_read_annotations_joins_by_id_and_routes_rejects(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({
        "images": [{"id": 2, "file_name": "y.jpg"}, {"id": 1, "file_name": "x.jpg"}],
        "annotations": [{"id": 10, "image_id": 1, "category_id": 7},
                        {"id": 11, "image_id": 2, "category_id": 99}],
        "categories": [{"id": 7, "name": "b"}, {"id": 3, "name": "a"}]}))
    with BeamTestPipeline() as p:
        good, bad = (p | beam.Create([("train", str(path))])
                     | transforms.ReadAnnotations(_label_map()))
        assert_that(good, equal_to([ImageRecord("train", "1", "x.jpg", 7, 1, "b", 0)]),
                    label="records")
        assert_that(bad | beam.Map(lambda r: (r.image_id, r.reason)),
                    equal_to([("2", records.UNKNOWN_CATEGORY)]), label="rejects")


def test_encode_images_spills_good_images_and_rejects_bad_ones(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "ok.jpg").write_bytes(imagefixtures.rgb_jpeg(80, 60, seed=1))
    (tmp_path / "img" / "bad.jpg").write_bytes(imagefixtures.html_page_bytes())

    class Config:  # the attributes EncodeImages reads from a BuildConfig
        images_roots = (("train", str(tmp_path / "img")),)
        max_side, max_pixels, jpeg_quality = 40, 10**8, 90

    inputs = [ImageRecord("train", str(i), name, 3, 0, "a", 0)
              for i, name in enumerate(["ok.jpg", "bad.jpg", "missing.jpg", "../ok.jpg"])]
    with BeamTestPipeline() as p:
        examples, bad = (p | beam.Create(inputs)
                         | transforms.EncodeImages(Config(), str(tmp_path / "spill")))
        assert_that(examples | beam.Map(lambda e: (e.image_id, e.length > 0)),
                    equal_to([("0", True)]), label="examples")
        assert_that(bad | beam.Map(lambda r: (r.image_id, r.reason)),
                    equal_to([("1", records.UNDECODABLE_IMAGE), ("2", records.MISSING_FILE),
                              ("3", records.PATH_ESCAPES_ROOT)]), label="rejects")


def test_count_labels_counts_train_examples_only():
    examples = [sharding.SpilledExample(split, str(i), label, "f", 0, 1)
                for i, (split, label) in enumerate([("train", 0), ("train", 2), ("train", 2),
                                                    ("val", 1)])]
    with BeamTestPipeline() as p:
        counts = (p | beam.Create(examples) | transforms.CountLabels(num_classes=4)
                  | beam.Map(list))
        assert_that(counts, equal_to([[1, 0, 2, 0]]))


def test_write_rejects_writes_sorted_jsonl_and_counts_reasons(tmp_path):
    path = str(tmp_path / "rejects.jsonl")
    rejects = [Reject("val", records.MISSING_FILE, "x", image_id="9"),
               Reject("train", records.EMPTY_FILE, "y", image_id="5"),
               Reject("train", records.EMPTY_FILE, "z", image_id="1")]
    with BeamTestPipeline() as p:
        counts = p | beam.Create(rejects) | transforms.WriteRejects(path)
        assert_that(counts, equal_to([{"train": {"empty_file": 2}, "val": {"missing_file": 1}}]))
    lines = [json.loads(line) for line in open(path)]
    assert [(r["split"], r["image_id"]) for r in lines] == [("train", "1"), ("train", "5"),
                                                             ("val", "9")]
    assert np.all([r["detail"] for r in lines])

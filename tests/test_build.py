"""End-to-end tests of `python -m beam_jobs.build` on a tiny raw dataset with bad inputs,
on the real Beam runner in both local modes, reading the real TFRecord output back."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from beam_jobs import build
from pipeline import records
from schemas import features, layout
from tests import buildfixtures

IN_MEMORY = ["--runner", "FnApiRunner"]
MULTI_PROCESSING = ["--runner", "FnApiRunner", "--direct_running_mode", "multi_processing",
                    "--direct_num_workers", "2"]


def _args(fx, out_dir, *extra):
    return ["--annotations", f"train={fx['annotations']['train']}",
            "--annotations", f"val={fx['annotations']['val']}",
            "--output_dir", str(out_dir), "--max_side", "64", "--dataset_name", "tiny", *extra]


def _read_split(out_dir, info, split):
    parsed = []
    for shard in info.splits[split].shards:
        for raw in tf.data.TFRecordDataset(os.path.join(out_dir, shard.file)):
            parsed.append({k: v.numpy() for k, v in features.parse_example(raw).items()})
    return parsed


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    return buildfixtures.make_raw_dataset(str(root))


@pytest.fixture(scope="module", params=["in_memory", "multi_processing"])
def built(request, raw, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"out_{request.param}")
    mode = IN_MEMORY if request.param == "in_memory" else MULTI_PROCESSING
    assert build.main(_args(raw, out, "--num_shards", "3", "--max_reject_fraction", "1",
                            *mode)) == 0
    info = layout.BuildInfo.from_json((out / layout.BUILD_INFO).read_text())
    return out, info


def test_every_annotation_written_once_or_rejected(raw, built):
    out, info = built
    rejects = [json.loads(line) for line in (out / layout.REJECTS).read_text().splitlines()]
    for split in ("train", "val"):
        written = [r["source_id"].decode() for r in _read_split(out, info, split)]
        assert len(written) == len(set(written)), "an image was written twice"
        expected_ok = {i for i, o in raw["expected"][split].items() if o == "ok"}
        assert set(written) == expected_ok
        rejected = {r["image_id"]: r["reason"] for r in rejects if r["split"] == split}
        for image_id, outcome in raw["expected"][split].items():
            if outcome != "ok":
                assert rejected.get(image_id) == outcome, image_id
        assert info.splits[split].num_records == len(written)
        assert sum(s.num_records for s in info.splits[split].shards) == len(written)
    # Annotation-level rejects: a second annotation with an unknown category, an unknown image.
    assert {records.UNKNOWN_CATEGORY, records.UNKNOWN_IMAGE} <= {r["reason"] for r in rejects}
    for r in rejects:
        assert r["reason"] in records.REASONS and r["detail"]
    counts = collections.Counter(r["reason"] for r in rejects if r["split"] == "train")
    assert info.splits["train"].rejected == dict(counts)


def test_label_counts_match_written_train_records(raw, built):
    out, info = built
    labels = [r["label"] for r in _read_split(out, info, "train")]
    counts = np.loadtxt(out / layout.LABEL_COUNTS, dtype=int)
    np.testing.assert_array_equal(counts, np.bincount(labels, minlength=info.num_classes))
    assert counts.sum() == info.splits["train"].num_records
    weights = np.loadtxt(out / layout.CLASS_WEIGHTS)
    assert weights.shape == (3,) and np.isclose(weights.mean(), 1.0)
    assert np.all(np.diff(weights[np.argsort(counts)]) <= 0), "rarer classes weigh more"
    source = raw["labels"]["train"]
    for r in _read_split(out, info, "train"):
        assert r["label"] == source[r["source_id"].decode()]


def test_outputs_follow_the_contract(built):
    out, info = built
    assert info.schema_version == features.SCHEMA_VERSION
    assert info.num_classes == 3 and info.dataset_name == "tiny"
    for split in ("train", "val"):
        names = [s.file for s in info.splits[split].shards]
        assert names == [layout.shard_name("tiny", split, i, 3) for i in range(3)]
        assert all((out / n).exists() for n in names)
        assert len(info.splits[split].annotation_sha256) == 64
    # Label map sorted by source category id, contiguous indices.
    label_map = json.loads((out / layout.LABEL_MAP).read_text())
    assert [row["category_id"] for row in label_map] == [10, 20, 30]
    assert [row["index"] for row in label_map] == [0, 1, 2]
    assert (out / layout.LABELS).read_text().splitlines() == [
        "Primus primus", "Secundus secundus", "Tertius tertius"]
    assert info.class_weighting["scheme"] == "inverse"
    assert json.loads((out / layout.BUILD_CONFIG).read_text())["max_side"] == 64
    leftovers = [p.name for p in out.iterdir() if p.name.startswith("_tmp") or ".incomplete" in p.name
                 or ".tmp-" in p.name]
    assert not leftovers, leftovers


def test_shards_parse_with_the_schema_and_hold_rgb_jpegs(built):
    out, info = built
    for r in _read_split(out, info, "train"):
        image = tf.io.decode_jpeg(r["image"])
        assert image.shape == (r["height"], r["width"], 3)
        assert max(r["height"], r["width"]) <= 64
        assert r["format"] == features.IMAGE_FORMAT
        assert r["label_text"].decode() in buildfixtures.NAMES


def test_rerun_is_byte_identical_across_modes(built, raw, tmp_path):
    out, info = built
    assert build.main(_args(raw, tmp_path, "--num_shards", "3", "--max_reject_fraction", "1",
                            *IN_MEMORY)) == 0
    for split in info.splits.values():
        for shard in split.shards:
            assert (tmp_path / shard.file).read_bytes() == (out / shard.file).read_bytes()
    assert (tmp_path / layout.REJECTS).read_bytes() == (out / layout.REJECTS).read_bytes()


@pytest.mark.parametrize("mode", [IN_MEMORY, MULTI_PROCESSING], ids=["in_memory", "multi_processing"])
def test_too_many_rejects_fails_after_writing_rejects(raw, tmp_path, mode, capsys):
    assert build.main(_args(raw, tmp_path, *mode)) == 1  # default 1% threshold
    err = capsys.readouterr().err
    assert "build failed: 9 of 38 inputs were rejected (23.68% > --max_reject_fraction 1.00%)" in err
    assert (tmp_path / layout.REJECTS).read_text().count("\n") > 5
    assert not (tmp_path / layout.BUILD_INFO).exists()


def test_rebuild_replaces_shards_of_an_earlier_build(tmp_path):
    fx = buildfixtures.make_raw_dataset(str(tmp_path / "raw"), awkward=False)
    out = tmp_path / "out"
    assert build.main(_args(fx, out, "--num_shards", "4", *IN_MEMORY)) == 0
    assert build.main(_args(fx, out, "--num_shards", "2", *IN_MEMORY)) == 0
    shards = sorted(p.name for p in out.glob("*.tfrecord-*"))
    assert shards == sorted(layout.shard_name("tiny", s, i, 2) for s in ("train", "val")
                            for i in range(2))


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "beam_jobs.build", *args, *IN_MEMORY],
                          capture_output=True, text=True, cwd=os.path.dirname(
                              os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("content, message", [
    (None, "annotation file not found"),
    ("{not json", "not valid JSON"),
    (json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [
        {"id": 1, "name": "a"}]}), "no annotations"),
])
def test_bad_annotation_file_fails_fast_naming_the_file(tmp_path, content, message):
    path = tmp_path / "train.json"
    if content is not None:
        path.write_text(content)
    result = _run_cli("--annotations", str(path), "--output_dir", str(tmp_path / "out"))
    assert result.returncode == 2
    assert str(path) in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr


def test_splits_with_different_categories_fail(tmp_path):
    fx = buildfixtures.make_raw_dataset(str(tmp_path / "raw"), awkward=False)
    doc = json.loads(open(fx["annotations"]["val"]).read())
    doc["categories"][0]["name"] = "Something else"
    with open(fx["annotations"]["val"], "w") as f:
        json.dump(doc, f)
    result = _run_cli(*_args(fx, tmp_path / "out"))
    assert result.returncode == 2 and "val.json" in result.stderr


def test_job_graph_does_not_grow_with_the_dataset(tmp_path):
    import apache_beam as beam  # pylint: disable=import-outside-toplevel
    from beam_jobs import config as build_config  # pylint: disable=import-outside-toplevel
    from pipeline.plan import plan_build  # pylint: disable=import-outside-toplevel

    sizes = []
    for n in (10, 3000):
        doc = {"images": [{"id": i, "file_name": f"{i}.jpg"} for i in range(n)],
               "annotations": [{"id": i, "image_id": i, "category_id": 1} for i in range(n)],
               "categories": [{"id": 1, "name": "a"}]}
        path = tmp_path / f"train{n}.json"
        path.write_text(json.dumps(doc))
        config, _ = build_config.parse_args(["--annotations", str(path), "--output_dir",
                                             str(tmp_path / "out")])
        p = beam.Pipeline()
        build.build_pipeline(p, config, plan_build(config.annotations, config.output_dir))
        sizes.append(len(p.to_runner_api().SerializeToString()))
    assert abs(sizes[1] - sizes[0]) < 1000, sizes


def test_quickstart_command_builds_the_bundled_sample(tmp_path):
    """The README's first command, run in a fresh folder: no flags but the runner."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": repo}
    result = subprocess.run([sys.executable, "-m", "beam_jobs.build", "--runner", "DirectRunner"],
                            capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "outputs" / "sample_tfrecords"
    info = layout.BuildInfo.from_json((out / layout.BUILD_INFO).read_text())
    assert info.num_classes >= 10 and set(info.splits) == {"train", "val"}
    counts = np.loadtxt(out / layout.LABEL_COUNTS, dtype=int)
    assert counts.sum() == info.splits["train"].num_records
    assert counts.max() >= 5 * counts.min(), "the sample is long-tailed"
    rejects = (out / layout.REJECTS).read_text().splitlines()
    assert len(rejects) == 1 and "truncated" in rejects[0]  # the sample's one corrupt image
    assert "build complete" in result.stderr

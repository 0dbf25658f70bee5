"""The product end to end: the Beam build's real output is what the trainer and the evaluator
read (no fixture writer in between)."""

from __future__ import annotations

import json
import os

from beam_jobs import build
from tests import buildfixtures
from train import evaluate, run


def test_trainer_and_evaluator_run_on_a_real_build(tmp_path):
    raw = buildfixtures.make_raw_dataset(str(tmp_path / "raw"), awkward=False,
                                         train_per_class=(12, 8, 6), val_per_class=4)
    out, model_dir = str(tmp_path / "out"), str(tmp_path / "run")
    assert build.main(["--annotations", f"train={raw['annotations']['train']}",
                       "--annotations", f"val={raw['annotations']['val']}",
                       "--output_dir", out, "--num_shards", "2", "--runner", "FnApiRunner"]) == 0
    assert run.main(["--data_dir", out, "--model_dir", model_dir, "--image_size", "32",
                     "--batch_size", "8", "--epochs", "2", "--checkpoint_every", "5"]) == 0
    assert evaluate.main(["--data_dir", out, "--model_dir", model_dir]) == 0
    with open(os.path.join(model_dir, "eval_val.json")) as f:
        metrics = json.load(f)
    assert metrics["num_examples"] == 12  # every val record of the build, once
    assert 0.0 <= metrics["top1"] <= 1.0
    with open(os.path.join(model_dir, "labels.txt")) as f:  # the build's label map came along
        assert f.read().splitlines() == ["Primus primus", "Secundus secundus", "Tertius tertius"]

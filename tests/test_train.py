"""End-to-end tests of `train.run` and `train.evaluate` on a tiny fixture build.

    python -m pytest tests/test_train.py -q

One short in-process run (module fixture) backs the loss, TensorBoard and run-directory tests and
the evaluation of its result; the kill-and-resume test and the two-replica test start real
`python` processes, as a user would.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from tests import shardfixtures
from train import config as config_lib
from train import evaluate, metrics, optim, run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(image_size=32, batch_size=8, log_every=2, checkpoint_every=10,
             mixed_precision=False, xla=False)
SCALAR_TAGS = {
    "loss/cross_entropy_weighted", "loss/cross_entropy_unweighted", "loss/l2_penalty",
    "weights/global_norm", "optimizer/gradient_norm", "optimizer/learning_rate",
    "train/top1", "train/top5", "train/images_per_second",
    "val/top1", "val/top5", "val/mean_per_class", "val/cross_entropy",
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    # 64 train records (a long tail), 16 val; classes are colours, learnable in a few steps.
    shardfixtures.write_fixture_build(out, num_classes=4, train_per_class=[28, 16, 12, 8],
                                      val_per_class=4, image_size=(48, 40), num_shards=2)
    return str(out)


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    config = config_lib.make_train_config(
        data_dir=data_dir, model_dir=str(tmp_path_factory.mktemp("run")), epochs=4, **SMALL)
    summary = run.train(config)
    return config, summary, metrics.read_scalars(os.path.join(config.model_dir, run.LOG_DIR))


def _mean(points):
    return float(np.mean([value for _, value in points]))


def test_loss_decreases(trained):
    _, summary, scalars = trained
    # The colour classes are learnt within a few steps, and batches of 8 with inverse-frequency
    # weights make single windows spiky (one misclassified rare example), so compare the first
    # window (near chance, ln 4 = 1.39) with the mean of the whole second half of the run.
    for tag in ("loss/cross_entropy_weighted", "loss/cross_entropy_unweighted"):
        loss = scalars[tag]
        assert _mean(loss[len(loss) // 2:]) < 0.6 * loss[0][1], (tag, loss)
    assert scalars["val/cross_entropy"][-1][1] < 0.7 * np.log(4), scalars["val/cross_entropy"]
    assert summary["top1"] > 0.5  # chance is 0.25


def test_writes_the_named_tensorboard_scalars_and_images(trained):
    config, _, scalars = trained
    assert SCALAR_TAGS <= set(scalars), SCALAR_TAGS - set(scalars)
    steps_per_epoch = 64 // 8
    assert [step for step, _ in scalars["val/top1"]] == [steps_per_epoch * e for e in (1, 2, 3, 4)]
    assert scalars["loss/l2_penalty"][0][0] == 0  # the starting weights are logged too
    assert all(0.0 <= value <= 1.0 for _, value in scalars["train/top1"])
    assert "train/augmented_images" in metrics.read_image_tags(
        os.path.join(config.model_dir, run.LOG_DIR))


def test_run_directory_holds_config_checkpoints_final_model_and_labels(trained, data_dir):
    config, _, _ = trained
    with open(os.path.join(config.model_dir, config_lib.CONFIG_FILE)) as f:
        assert config_lib.TrainConfig.from_json(f.read()) == config
    latest = tf.train.latest_checkpoint(os.path.join(config.model_dir, evaluate.CHECKPOINT_DIR))
    assert latest.endswith("ckpt-32")  # saved at the end as well as every 10 steps
    for name in (evaluate.FINAL_MODEL, "labels.txt", "label_map.json"):
        assert os.path.exists(os.path.join(config.model_dir, name)), name
    with open(os.path.join(data_dir, "labels.txt")) as a, \
            open(os.path.join(config.model_dir, "labels.txt")) as b:
        assert a.read() == b.read()


def test_evaluate_writes_metrics_json_from_final_model_and_checkpoint(trained, data_dir):
    config, summary, _ = trained
    args = ["--data_dir", data_dir, "--model_dir", config.model_dir, "--batch_size", "5"]
    assert evaluate.main(args) == 0
    with open(os.path.join(config.model_dir, "eval_val.json")) as f:
        final = json.load(f)
    for key in ("top1", "top5", "mean_per_class", "many_shot", "medium_shot", "few_shot",
                "num_examples"):
        assert key in final, key
    assert final["num_examples"] == 16 and final["many_shot"] is None  # no class has 100 images
    assert final["top1"] == pytest.approx(summary["top1"])  # same as the run's last validation
    assert evaluate.main(args + ["--source", "checkpoint"]) == 0
    with open(os.path.join(config.model_dir, "eval_val.json")) as f:
        assert json.load(f)["top1"] == pytest.approx(final["top1"])


def test_contradictory_flags_exit_before_any_work(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "train.run", "--model_dir", str(tmp_path / "run"),
         "--optimizer", "adamw", "--regularization", "coupled_l2"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "use --optimizer adam" in result.stderr
    assert not (tmp_path / "run").exists()


def _latest_step(model_dir):
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, evaluate.CHECKPOINT_DIR))
    return None if latest is None else int(latest.rsplit("-", 1)[1])


def test_killed_run_resumes_from_its_last_checkpoint(data_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    flags = dict(SMALL, epochs=15, checkpoint_every=3, log_every=5)
    command = [sys.executable, "-m", "train.run", "--data_dir", data_dir, "--model_dir", model_dir,
               "--no-mixed_precision", "--no-xla"] + [
        arg for key, value in flags.items() if key not in ("mixed_precision", "xla")
        for arg in (f"--{key}", str(value))]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")

    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _latest_step(model_dir) is None and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # no clean-up: as if the machine went away
    first.wait()
    saved = _latest_step(model_dir)
    total = 15 * (64 // 8)
    assert saved is not None and 0 < saved < total

    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=240)
    assert second.returncode == 0, second.stderr[-3000:]
    resumed = re.search(r"Resumed from checkpoint \S+ckpt-(\d+) at step (\d+)", second.stderr)
    assert resumed, second.stderr[-3000:]
    assert int(resumed.group(1)) == int(resumed.group(2)) == saved
    assert _latest_step(model_dir) == total

    # The optimizer's step counter came back too: the learning rate logged after the resume is
    # the schedule's value at the global step, not at the step count of the second process.
    config = config_lib.make_train_config(data_dir=data_dir, model_dir=model_dir, **flags)
    schedule = optim.make_schedule(config, steps_per_epoch=64 // 8)
    scalars = metrics.read_scalars(os.path.join(model_dir, run.LOG_DIR))
    after = [(s, v) for s, v in scalars["optimizer/learning_rate"] if s > saved + 5]
    assert after
    for step, value in after[:3]:
        assert value == pytest.approx(float(schedule(step)), rel=1e-5), step


TWO_REPLICAS = textwrap.dedent("""
    import logging, sys
    import tensorflow as tf
    logging.basicConfig(level=logging.INFO)
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from train import config as config_lib, run
    config = config_lib.make_train_config(data_dir=sys.argv[1], model_dir=sys.argv[2], epochs=2,
        image_size=32, batch_size=8, log_every=4, mixed_precision=False, xla=False)
    summary = run.train(config, tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    print("TOP1", summary["top1"])
""")


def test_mirrored_strategy_over_two_cpu_replicas(data_dir, tmp_path):
    """The multi-GPU code path (MirroredStrategy, per-replica input pipelines), on two CPUs."""
    result = subprocess.run([sys.executable, "-c", TWO_REPLICAS, data_dir, str(tmp_path / "run")],
                            cwd=REPO, capture_output=True, text=True, timeout=240,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 replica(s)" in result.stderr
    assert "TOP1" in result.stdout

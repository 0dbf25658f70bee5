"""Tests for train/config.py: defaults per model, resolution, contradictions fail at start-up.

    python -m pytest tests/test_config.py -q
"""

from __future__ import annotations

import pytest

from train import config as config_lib


def _parse(*argv, gpu=False):
    return config_lib.parse_train_args(list(argv), gpu_visible=gpu)


def test_defaults_are_the_small_cpu_run_on_the_sample():
    config = _parse()
    assert (config.data_dir, config.model_dir) == ("outputs/sample_tfrecords", "runs/sample")
    assert (config.model, config.optimizer, config.regularization) == (
        "small_cnn", "adamw", "decoupled")
    assert config.image_size <= 96 and config.batch_size <= 64
    assert not config.mixed_precision and not config.xla


def test_inception_resnet_v2_gets_the_originals_image_and_batch_size():
    config = _parse("--model", "inception_resnet_v2", "--weights", "imagenet",
                    "--freeze_backbone")
    assert (config.image_size, config.batch_size) == (299, 60)
    assert _parse("--model", "inception_resnet_v2", "--image_size", "160").image_size == 160


def test_gpu_turns_mixed_precision_and_xla_on_unless_told_otherwise():
    assert _parse(gpu=True).mixed_precision and _parse(gpu=True).xla
    config = _parse("--no-mixed_precision", "--no-xla", gpu=True)
    assert not config.mixed_precision and not config.xla
    assert _parse("--xla").xla  # and may be asked for on a CPU


def test_regularisation_picks_optimizer_and_coefficient():
    coupled = _parse("--regularization", "coupled_l2")
    assert (coupled.optimizer, coupled.weight_decay, coupled.l2_coefficient) == (
        "adam", 4e-5, 4e-5)
    decoupled = _parse()
    assert decoupled.weight_decay == 0.05
    assert decoupled.l2_coefficient == config_lib.REPORTED_L2_COEFFICIENT  # logged for comparison
    assert _parse("--optimizer", "sgd").learning_rate == config_lib.SGD_LEARNING_RATE


@pytest.mark.parametrize("argv, message", [
    (["--freeze_backbone"], "needs --model inception_resnet_v2"),
    (["--weights", "imagenet"], "needs --model inception_resnet_v2"),
    (["--model", "inception_resnet_v2", "--freeze_backbone"], "random features"),
    (["--optimizer", "adamw", "--regularization", "coupled_l2"], "use --optimizer adam"),
    (["--optimizer", "adam", "--regularization", "decoupled"], "is AdamW"),
    (["--regularization", "none", "--weight_decay", "0.1"], "--regularization none"),
    (["--lr_schedule", "exponential", "--warmup_epochs", "2"], "cosine only"),
    (["--decay_rate", "0.5"], "exponential only"),
    (["--label_smoothing", "1.0"], "label_smoothing"),
    (["--batch_size", "0"], "batch_size"),
    (["--model", "inception_resnet_v2", "--image_size", "64"], ">= 75"),
])
def test_contradictory_flags_fail_with_a_clear_message(argv, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        _parse(*argv)


def test_config_round_trips_through_json():
    config = _parse("--label_smoothing", "0.1", "--epochs", "3")
    assert config_lib.TrainConfig.from_json(config.to_json()) == config


def test_make_train_config_rejects_unknown_flags():
    with pytest.raises(config_lib.ConfigError, match="unknown"):
        config_lib.make_train_config(gpu_visible=False, lerning_rate=1.0)

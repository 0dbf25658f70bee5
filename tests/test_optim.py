"""Tests for train/optim.py: weight-decay exclusion, optimizer choice, learning-rate schedules.

    python -m pytest tests/test_optim.py -q
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from train import config as config_lib
from train import losses, models, optim


def _config(**flags):
    return config_lib.make_train_config(gpu_visible=False, **flags)


def _step_with_zero_gradients(config):
    """One optimizer step whose gradients are all zero: only weight decay can move a variable."""
    model = models.small_cnn(num_classes=3, image_size=32)
    variables = model.trainable_variables
    optimizer = optim.make_optimizer(config, config.learning_rate, variables)
    before = [v.numpy().copy() for v in variables]
    optimizer.apply_gradients(zip([np.zeros(v.shape, np.float32) for v in variables], variables))
    return [(v, b, v.numpy()) for v, b in zip(variables, before)]


def test_adamw_decays_kernels_and_never_biases_or_batchnorm():
    config = _config(optimizer="adamw", weight_decay=0.5, learning_rate=0.1)
    changes = _step_with_zero_gradients(config)
    for variable, before, after in changes:
        if losses.is_decayed(variable):
            # Keras' decoupled decay: w <- w - lr * wd * w.
            np.testing.assert_allclose(after, before * (1 - 0.1 * 0.5), rtol=1e-5,
                                       err_msg=variable.path)
        else:
            np.testing.assert_array_equal(after, before, err_msg=variable.path)
    assert any(not losses.is_decayed(v) for v, _, _ in changes)  # biases/betas were checked


def test_sgd_decoupled_also_spares_biases_and_batchnorm():
    changes = _step_with_zero_gradients(_config(optimizer="sgd", weight_decay=0.5))
    for variable, before, after in changes:
        if not losses.is_decayed(variable):
            np.testing.assert_array_equal(after, before, err_msg=variable.path)


def test_coupled_l2_adds_no_decay_to_the_optimizer():
    config = _config(regularization="coupled_l2")
    assert config.optimizer == "adam" and config.weight_decay == 4e-5
    for _, before, after in _step_with_zero_gradients(config):
        np.testing.assert_array_equal(after, before)


def test_mixed_precision_wraps_in_a_loss_scale_optimizer():
    config = _config(mixed_precision=True)
    optimizer = optim.make_optimizer(config, 1e-3, [])
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(optimizer.inner_optimizer, keras.optimizers.AdamW)


def _learning_rates(schedule, steps):
    return np.array([float(schedule(step)) for step in steps])


def test_exponential_schedule_is_the_originals_0_8_every_two_epochs_in_stairs():
    config = _config(lr_schedule="exponential", learning_rate=0.01)
    schedule = optim.make_schedule(config, steps_per_epoch=10)
    rates = _learning_rates(schedule, [0, 19, 20, 39, 40])
    np.testing.assert_allclose(rates, [0.01, 0.01, 0.008, 0.008, 0.0064], rtol=1e-6)


def test_cosine_schedule_warms_up_linearly_then_decays_to_zero():
    config = _config(lr_schedule="cosine", learning_rate=0.01, warmup_epochs=1, epochs=5)
    schedule = optim.make_schedule(config, steps_per_epoch=10)
    rates = _learning_rates(schedule, [0, 5, 10, 30, 50])
    np.testing.assert_allclose(rates[:3], [0.0, 0.005, 0.01], atol=1e-7)
    assert rates[2] > rates[3] > rates[4] and rates[4] == pytest.approx(0.0, abs=1e-7)


def test_constant_schedule():
    assert optim.make_schedule(_config(lr_schedule="constant", learning_rate=0.3), 10) == 0.3

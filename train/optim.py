"""Optimizers, weight-decay exclusion and learning-rate schedules.

    schedule = make_schedule(config, steps_per_epoch)
    optimizer = make_optimizer(config, schedule, model.trainable_variables)

Regularisation (config.regularization):
  decoupled   Keras' `weight_decay` (AdamW for adam, SGDW for sgd): each step subtracts
              lr * wd * w from the decayed variables, outside the adaptive normalisation.
  coupled_l2  no optimizer decay; `train.losses.l2_penalty` is added to the loss instead (the
              original script's slim L2 + Adam), so it passes through Adam's normalisation.
Either way only conv/dense kernels are decayed (`train.losses.is_decayed`).
"""

from __future__ import annotations

import logging

import keras

from train import losses
from train.config import TrainConfig

log = logging.getLogger(__name__)


def make_schedule(config: TrainConfig, steps_per_epoch: int):
    """The learning rate as a function of the optimizer's step counter."""
    lr = config.learning_rate
    total_steps = max(1, config.epochs * steps_per_epoch)
    if config.lr_schedule == "constant":
        return lr
    if config.lr_schedule == "exponential":
        # The original: x decay_rate every decay_epochs, in stairs.
        return keras.optimizers.schedules.ExponentialDecay(
            lr, decay_steps=max(1, round(config.decay_epochs * steps_per_epoch)),
            decay_rate=config.decay_rate, staircase=True)
    if config.lr_schedule == "cosine":
        # Linear warm-up from 0 to lr, then cosine to 0 at the last step.
        warmup = min(round(config.warmup_epochs * steps_per_epoch), total_steps - 1)
        if warmup <= 0:
            return keras.optimizers.schedules.CosineDecay(lr, decay_steps=total_steps)
        return keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=total_steps - warmup, warmup_target=lr, warmup_steps=warmup)
    raise ValueError(f"unknown lr_schedule {config.lr_schedule!r}")


def make_optimizer(config: TrainConfig, schedule, variables) -> keras.optimizers.Optimizer:
    """The optimizer, with decay excluded from every variable that is not a kernel.

    `variables` are the trainable variables the optimizer will update (needed to exclude them
    by identity; Keras' name patterns would have to guess what 'bias' and 'beta' are called).
    Under mixed precision it is wrapped in a LossScaleOptimizer.
    """
    decoupled = config.regularization == "decoupled"
    wd = config.weight_decay if decoupled else None
    if config.optimizer in ("adamw", "adam"):
        cls = keras.optimizers.AdamW if decoupled else keras.optimizers.Adam
        optimizer = cls(learning_rate=schedule, weight_decay=wd)
    elif config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=config.momentum,
                                         nesterov=True, weight_decay=wd)
    else:
        raise ValueError(f"unknown optimizer {config.optimizer!r}")
    if decoupled:
        exempt = [v for v in variables if not losses.is_decayed(v)]
        optimizer.exclude_from_weight_decay(var_list=exempt)
        log.info("Decoupled weight decay %g on %d kernels; %d biases/BatchNorm variables exempt",
                 config.weight_decay, len(variables) - len(exempt), len(exempt))
    if config.mixed_precision:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def current_learning_rate(optimizer) -> float:
    """The learning rate the next step will use (schedules evaluated at the step counter)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return float(inner.learning_rate)

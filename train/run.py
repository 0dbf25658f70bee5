"""Trains a classifier on a build job's output folder.

    python -m train.run                                  # bundled sample, small CNN: minutes on a CPU
    python -m train.run --data_dir OUT --model_dir RUN --model inception_resnet_v2 --weights imagenet
    tensorboard --logdir RUN/logs

RUN receives config.json (the resolved flags), checkpoints/ (every --checkpoint_every steps and
at the end; running the same command again resumes from the latest), logs/ (TensorBoard),
final.keras with labels.txt and label_map.json beside it. `python -m train.evaluate` computes
the full metrics afterwards.

The loop is a tf.function train step under a tf.distribute strategy (MirroredStrategy when more
than one GPU is visible, OneDeviceStrategy on one GPU, else the default one), with the forward
and backward pass XLA-compiled under --xla. A killed run restarts from its latest checkpoint
at the same step (the data order after a restart is a fresh shuffle). Scalars logged (TensorBoard tag: meaning):
  loss/cross_entropy_weighted    the class-weighted CE being minimised (window mean)
  loss/cross_entropy_unweighted  plain CE on the same batches
  loss/l2_penalty                l2 * sum ||kernel||^2 / 2, logged whatever the regularisation
  weights/global_norm            sqrt of the sum of squares of all trainable variables
  optimizer/gradient_norm        global norm of the gradients (window mean)
  optimizer/learning_rate
  train/top1, train/top5         accuracy since the start of the current epoch (reset per epoch)
  train/images_per_second
  val/top1, val/top5, val/mean_per_class, val/cross_entropy, val/*_shot   after every epoch
and the image summary train/augmented_images once, at step 0.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from typing import Optional, Sequence

import keras
import tensorflow as tf
import tqdm

from schemas import layout
from train import config as config_lib
from train import data, evaluate, losses, metrics, models, optim

log = logging.getLogger(__name__)

LOG_DIR = "logs"
# Flags a resumed run may change; any other change alters what the checkpoint means.
RESUMABLE_CHANGES = {"data_dir", "model_dir", "epochs", "checkpoint_every", "keep_checkpoints",
                     "log_every", "num_summary_images", "mixed_precision", "xla"}


def make_strategy() -> tf.distribute.Strategy:
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    if len(gpus) == 1:
        # Unlike the default strategy, its distributed dataset prefetches batches onto the GPU,
        # so the host-to-device copy overlaps the previous step.
        return tf.distribute.OneDeviceStrategy(gpus[0].name)
    return tf.distribute.get_strategy()  # the default strategy: the CPU, no overhead


def save_config(config: config_lib.TrainConfig) -> None:
    """Writes config.json; refuses to resume a run whose meaning the new flags would change."""
    path = os.path.join(config.model_dir, config_lib.CONFIG_FILE)
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            old = config_lib.TrainConfig.from_json(f.read())
        changed = sorted(k for k in dataclasses.asdict(config)
                         if getattr(old, k) != getattr(config, k) and k not in RESUMABLE_CHANGES)
        if changed and tf.train.latest_checkpoint(os.path.join(config.model_dir,
                                                               evaluate.CHECKPOINT_DIR)):
            raise config_lib.ConfigError(
                f"{config.model_dir} holds a run with different {', '.join(changed)}; resume it "
                "with the same flags or choose another --model_dir")
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(config.to_json())


def make_train_step(model, optimizer, config: config_lib.TrainConfig, strategy, num_classes: int):
    """A tf.function: one optimizer step on a (distributed) batch -> dict of summed scalars."""
    variables = model.trainable_variables
    kernels = losses.decayed_variables(variables)
    replicas = strategy.num_replicas_in_sync
    loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    k = min(5, num_classes)

    @tf.function(jit_compile=config.xla)
    def forward_backward(images, labels, weights):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            weighted, unweighted = losses.batch_losses(labels, logits, weights, config.batch_size,
                                                       config.label_smoothing)
            loss = weighted
            if config.regularization == "coupled_l2":
                # Each replica adds its share: the all-reduced gradient holds the penalty once.
                loss += losses.l2_penalty(kernels, config.weight_decay) / replicas
            if loss_scaled:
                loss = optimizer.scale_loss(loss)
        return tape.gradient(loss, variables), logits, weighted, unweighted

    def replica_step(images, labels, weights):
        grads, logits, weighted, unweighted = forward_backward(images, labels, weights)
        grad_norm = tf.linalg.global_norm(grads)
        if loss_scaled:
            grad_norm /= optimizer.dynamic_scale
        optimizer.apply_gradients(zip(grads, variables))
        hits = tf.cast(tf.math.top_k(logits, k).indices == labels[:, None], tf.float32)
        return {"cross_entropy_weighted": weighted, "cross_entropy_unweighted": unweighted,
                "gradient_norm": grad_norm / replicas,  # summed over replicas below: a mean
                "top1_hits": tf.reduce_sum(hits[:, 0]), "top5_hits": tf.reduce_sum(hits),
                "examples": tf.cast(tf.shape(labels)[0], tf.float32)}

    @tf.function
    def train_step(batch):
        per_replica = strategy.run(replica_step, args=batch)
        return {name: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                for name, value in per_replica.items()}

    return train_step


def train(config: config_lib.TrainConfig,
          strategy: Optional[tf.distribute.Strategy] = None) -> dict:
    """Trains (or resumes) the run in config.model_dir; returns the last validation summary.

    `strategy`: default `make_strategy()`; tests pass a MirroredStrategy over CPU devices.
    """
    strategy = strategy or make_strategy()
    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_global_policy("mixed_float16" if config.mixed_precision
                                            else "float32")
    try:
        return _train(config, strategy)
    finally:
        keras.mixed_precision.set_global_policy("float32")  # the policy is process-global


def _train(config: config_lib.TrainConfig, strategy) -> dict:
    info = data.load_build_info(config.data_dir)
    if "train" not in info.splits:
        raise ValueError(f"{config.data_dir} has no train split: {sorted(info.splits)}")
    steps_per_epoch = info.splits["train"].num_records // config.batch_size
    if steps_per_epoch == 0 or config.batch_size % strategy.num_replicas_in_sync:
        raise config_lib.ConfigError(
            f"--batch_size {config.batch_size} must be <= the {info.splits['train'].num_records} "
            f"train records and divisible by {strategy.num_replicas_in_sync} replicas")
    total_steps = steps_per_epoch * config.epochs
    label_counts = data.load_label_counts(config.data_dir, info)
    class_weights = None  # None: every example weighs 1
    if config.class_weighting == "precomputed":
        class_weights = losses.normalize_class_weights(
            data.load_class_weights(config.data_dir, info), label_counts)
    tf.io.gfile.makedirs(config.model_dir)
    save_config(config)
    log.info("Training %s on %s: %d classes, %d steps/epoch x %d epochs, %d replica(s), "
             "mixed precision %s, XLA %s", config.model, config.data_dir, info.num_classes,
             steps_per_epoch, config.epochs, strategy.num_replicas_in_sync,
             config.mixed_precision, config.xla)
    model, optimizer, checkpoint, manager = _build_or_restore(
        config, info.num_classes, steps_per_epoch, total_steps, strategy)
    step = int(checkpoint.step.numpy())

    reader = data.ReaderConfig(image_size=config.image_size, batch_size=config.batch_size,
                               shuffle_buffer=config.shuffle_buffer,
                               min_crop_area=config.min_crop_area)
    train_data = strategy.distribute_datasets_from_function(
        lambda ctx: data.make_dataset(
            config.data_dir, "train", reader, training=True, class_weights=class_weights,
            label_counts=label_counts, input_context=ctx,
            seed=config.seed + step,  # a resumed run does not replay the first epochs' order
            repeat=True))
    iterator = iter(train_data)
    val_data = (data.make_dataset(config.data_dir, "val", reader, training=False)
                if "val" in info.splits else None)
    train_step = make_train_step(model, optimizer, config, strategy, info.num_classes)
    predict_step = evaluate.make_predict_step(model, info.num_classes)
    writer = tf.summary.create_file_writer(os.path.join(config.model_dir, LOG_DIR))

    val_summary, epoch_totals, window, progress = {}, None, None, None
    window_start = time.perf_counter()
    with writer.as_default():
        while step < total_steps:
            epoch, step_in_epoch = divmod(step, steps_per_epoch)
            if progress is None:  # start of an epoch, or of a resumed one
                epoch_totals = None  # train accuracy restarts every epoch
                progress = tqdm.tqdm(total=steps_per_epoch, initial=step_in_epoch, unit="step",
                                     desc=f"epoch {epoch + 1}/{config.epochs}", disable=None)
            batch = next(iterator)
            if step == 0:
                _write_scalars(_weight_scalars(model, config), step=0)  # where the norms start
                if config.num_summary_images:
                    images = strategy.experimental_local_results(batch[0])[0]
                    tf.summary.image("train/augmented_images", images, step=0,  # uint8 as is
                                     max_outputs=config.num_summary_images)
            outputs = train_step(batch) | {"steps": 1.0}
            step += 1
            progress.update(1)
            # Sums of tensors, not Python floats: no host-device sync between steps.
            epoch_totals = outputs if epoch_totals is None else _add(epoch_totals, outputs)
            window = outputs if window is None else _add(window, outputs)
            end_of_epoch = step % steps_per_epoch == 0
            if step % config.log_every == 0 or end_of_epoch:
                scalars = _train_scalars(model, optimizer, config, window, epoch_totals)
                scalars["train/images_per_second"] = (float(window["examples"])
                                                      / (time.perf_counter() - window_start))
                _write_scalars(scalars, step)
                progress.set_postfix(loss=f"{scalars['loss/cross_entropy_weighted']:.3f}",
                                     top1=f"{scalars['train/top1']:.3f}",
                                     img_s=f"{scalars['train/images_per_second']:.0f}")
                window, window_start = None, time.perf_counter()
            if step % config.checkpoint_every == 0:
                _save_checkpoint(checkpoint, manager, step)
                writer.flush()  # the logs on disk match the checkpoint a restart resumes from
            if end_of_epoch:
                progress.close()
                progress = None
                if val_data is not None:
                    val_summary = _validate(predict_step, val_data, label_counts, step)
                log.info("epoch %d/%d step %d: loss %.3f, train top1 %.3f, val top1 %s, "
                         "%.0f img/s", epoch + 1, config.epochs, step,
                         scalars["loss/cross_entropy_weighted"], scalars["train/top1"],
                         _fmt(val_summary.get("top1")), scalars["train/images_per_second"])
                window_start = time.perf_counter()  # validation is not training time

    if manager.latest_checkpoint is None or int(checkpoint.step.numpy()) != step:
        _save_checkpoint(checkpoint, manager, step)
    writer.close()
    _save_final(model, config, info)
    return val_summary


def _build_or_restore(config, num_classes: int, steps_per_epoch: int, total_steps: int,
                      strategy):
    """Model, optimizer and step counter, restored from the latest checkpoint if there is one."""
    with strategy.scope():
        model = models.build_model(config.model, num_classes, config.image_size,
                                   weights=config.weights, freeze_backbone=config.freeze_backbone)
        optimizer = optim.make_optimizer(config, optim.make_schedule(config, steps_per_epoch),
                                         model.trainable_variables)
        optimizer.build(model.trainable_variables)  # its slots must exist before a restore
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    # The optimizer carries its own iteration count (the schedule's input); `step` is ours.
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(
        checkpoint, os.path.join(config.model_dir, evaluate.CHECKPOINT_DIR),
        max_to_keep=config.keep_checkpoints)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        log.info("Resumed from checkpoint %s at step %d (of %d)", manager.latest_checkpoint,
                 int(step.numpy()), total_steps)
    return model, optimizer, checkpoint, manager


def _save_checkpoint(checkpoint, manager, step: int) -> None:
    checkpoint.step.assign(step)
    manager.save(checkpoint_number=step)


def _add(a: dict, b: dict) -> dict:
    return {name: a[name] + b[name] for name in a}


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _weight_scalars(model, config) -> dict:
    kernels = losses.decayed_variables(model.trainable_variables)
    return {
        "loss/l2_penalty": float(losses.l2_penalty(kernels, config.l2_coefficient)),
        "weights/global_norm": float(tf.linalg.global_norm(model.trainable_variables)),
    }


def _train_scalars(model, optimizer, config, window, epoch_totals) -> dict:
    steps = float(window["steps"])
    examples = float(epoch_totals["examples"])
    return {
        "loss/cross_entropy_weighted": float(window["cross_entropy_weighted"]) / steps,
        "loss/cross_entropy_unweighted": float(window["cross_entropy_unweighted"]) / steps,
        **_weight_scalars(model, config),
        "optimizer/gradient_norm": float(window["gradient_norm"]) / steps,
        "optimizer/learning_rate": optim.current_learning_rate(optimizer),
        "train/top1": float(epoch_totals["top1_hits"]) / examples,
        "train/top5": float(epoch_totals["top5_hits"]) / examples,
    }


def _write_scalars(scalars: dict, step: int) -> None:
    for name, value in scalars.items():
        tf.summary.scalar(name, value, step=step)


def _validate(predict_step, val_data, label_counts, step: int) -> dict:
    labels, top_k, cross_entropy = evaluate.predict(predict_step, val_data)
    summary = metrics.summarize(labels, top_k, label_counts)
    summary["cross_entropy"] = cross_entropy
    for name in ("top1", "top5", "mean_per_class", "cross_entropy", "many_shot", "medium_shot",
                 "few_shot"):
        if summary[name] is not None:
            tf.summary.scalar(f"val/{name}", summary[name], step=step)
    return summary


def _save_final(model, config, info) -> None:
    """final.keras plus the label files it needs to be read, copied from the build."""
    path = os.path.join(config.model_dir, evaluate.FINAL_MODEL)
    model.save(path)
    for role, default in (("labels", layout.LABELS), ("label_map", layout.LABEL_MAP)):
        source = os.path.join(config.data_dir, info.files.get(role, default))
        if tf.io.gfile.exists(source):
            tf.io.gfile.copy(source, os.path.join(config.model_dir, default), overwrite=True)
        else:
            log.warning("%s not found: the saved model has no %s beside it", source, role)
    log.info("Saved %s with its label map", path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)  # TF checkpointing chatter
    start = time.perf_counter()
    try:
        config = config_lib.parse_train_args(argv)
        log.info("Config:\n%s", config.to_json())
        summary = train(config)
    except config_lib.ConfigError as e:
        log.error("%s", e)
        return 2
    log.info("Done in %.0f s; validation: %s", time.perf_counter() - start,
             {k: summary[k] for k in ("top1", "top5", "mean_per_class") if k in summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())

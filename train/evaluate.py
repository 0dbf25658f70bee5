"""Evaluates a training run on one split: top-1, top-5, mean per-class and shot-group accuracy.

    python -m train.evaluate --data_dir OUT --model_dir RUN            # val split
    python -m train.evaluate --data_dir OUT --model_dir RUN --source checkpoint

Loads `RUN/final.keras` (or, when the run has not finished, rebuilds the model from
`RUN/config.json` and restores the latest checkpoint), predicts the split in build order with the
eval transform (centre crop), and writes `RUN/eval_{split}.json` (keys top1, top5,
mean_per_class, many_shot, medium_shot, few_shot, num_examples, ...; see `train.metrics`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from train import config as config_lib
from train import data, losses, metrics, models

log = logging.getLogger(__name__)

FINAL_MODEL = "final.keras"
CHECKPOINT_DIR = "checkpoints"


def make_predict_step(model, num_classes: int, k: int = 5):
    """A tf.function: (images, labels) -> (top-k class indices, summed cross-entropy).

    Keeps only the k best class indices per example, not the [B, C] logits (iNat2021's val split
    would need 100k x 10k floats). reduce_retracing: the last batch is usually smaller.
    """
    k = min(k, num_classes)

    @tf.function(reduce_retracing=True)
    def step(images, labels):
        logits = tf.cast(model(images, training=False), tf.float32)
        return tf.math.top_k(logits, k).indices, tf.reduce_sum(losses.cross_entropy(labels, logits))

    return step


def predict(predict_step, dataset):
    """(labels [N], top-k classes [N, k], mean cross-entropy) over one pass of `dataset`."""
    all_labels, all_top_k, ce_sum = [], [], 0.0
    for batch in dataset:
        images, labels = batch[0], batch[1]  # the reader also yields weights: not needed here
        top_k, ce = predict_step(images, labels)
        all_labels.append(labels.numpy())
        all_top_k.append(top_k.numpy())
        ce_sum += float(ce)
    if not all_labels:
        raise ValueError("the evaluation split yielded no examples")
    labels = np.concatenate(all_labels)
    return labels, np.concatenate(all_top_k), ce_sum / labels.size


def load_model(model_dir: str, source: str = "auto"):
    """The run's final model, or its config's model restored from the latest checkpoint."""
    final_path = os.path.join(model_dir, FINAL_MODEL)
    if source in ("auto", "final") and tf.io.gfile.exists(final_path):
        log.info("Loading %s", final_path)
        return keras.models.load_model(final_path, compile=False)
    if source == "final":
        raise FileNotFoundError(f"{final_path} does not exist: the run has not finished")
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, CHECKPOINT_DIR))
    if latest is None:
        raise FileNotFoundError(f"{model_dir} has neither {FINAL_MODEL} nor a checkpoint")
    with tf.io.gfile.GFile(os.path.join(model_dir, config_lib.CONFIG_FILE)) as f:
        run_config = config_lib.TrainConfig.from_json(f.read())
    info = data.load_build_info(run_config.data_dir)
    model = models.build_model(run_config.model, info.num_classes, run_config.image_size)
    # Only the model's variables: the optimizer slots in the checkpoint are not needed.
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    log.info("Restored %s", latest)
    return model


def evaluate(cfg: config_lib.EvalConfig) -> dict:
    """Runs the evaluation, writes `eval_{split}.json` in the run dir and returns the summary."""
    info = data.load_build_info(cfg.data_dir)
    model = load_model(cfg.model_dir, cfg.source)
    image_size = int(model.inputs[0].shape[1])
    if int(model.outputs[0].shape[-1]) != info.num_classes:
        raise ValueError(f"the model predicts {model.outputs[0].shape[-1]} classes, "
                         f"{cfg.data_dir} has {info.num_classes}")
    dataset = data.make_dataset(cfg.data_dir, cfg.split,
                                data.ReaderConfig(image_size=image_size,
                                                  batch_size=cfg.batch_size), training=False)
    labels, top_k, ce = predict(make_predict_step(model, info.num_classes), dataset)
    summary = metrics.summarize(labels, top_k, data.load_label_counts(cfg.data_dir, info))
    summary.update(split=cfg.split, cross_entropy=ce, data_dir=cfg.data_dir)
    out_path = os.path.join(cfg.model_dir, f"eval_{cfg.split}.json")
    with tf.io.gfile.GFile(out_path, "w") as f:
        f.write(json.dumps(summary, indent=2, sort_keys=True))
    log.info("Evaluation of %s on %s/%s:\n%s", cfg.model_dir, cfg.data_dir, cfg.split,
             metrics.format_table(summary))
    log.info("Wrote %s", out_path)
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)  # TF checkpointing chatter
    try:
        cfg = config_lib.parse_eval_args(argv)
    except config_lib.ConfigError as e:
        log.error("%s", e)
        return 2
    evaluate(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())

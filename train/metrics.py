"""Evaluation math in plain numpy, and reading TensorBoard scalars back from event files.

    summary = summarize(labels, top_k, label_counts)   # labels [N], top_k [N, k] class indices

Shot groups follow the long-tail literature (Liu et al. 2019, "Large-Scale Long-Tailed
Recognition in an Open World"): a class is many-shot with >= 100 training images, medium with
20-99, few-shot with < 20. A group's accuracy is the mean of the per-class accuracies of its
classes that have evaluation examples; a group without such classes is None (null in JSON).
"""

from __future__ import annotations

import collections
import glob
import os
from typing import Optional

import numpy as np

MANY_SHOT_MIN = 100
FEW_SHOT_MAX = 19  # < 20


def top_k_accuracy(labels, top_k, k: int) -> float:
    """Fraction of examples whose label is among the first k predicted classes."""
    labels, top_k = np.asarray(labels), np.asarray(top_k)
    if labels.size == 0:
        return float("nan")
    return float(np.mean(np.any(top_k[:, :k] == labels[:, None], axis=1)))


def per_class_accuracy(labels, predictions, num_classes: int) -> np.ndarray:
    """Top-1 accuracy of each class [C]; NaN for classes without examples."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    totals = np.bincount(labels, minlength=num_classes).astype(np.float64)
    correct = np.bincount(labels[predictions == labels], minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, correct / totals, np.nan)


def shot_groups(label_counts) -> dict[str, np.ndarray]:
    """{'many_shot' | 'medium_shot' | 'few_shot': boolean mask over classes} by training count."""
    counts = np.asarray(label_counts)
    return {
        "many_shot": counts >= MANY_SHOT_MIN,
        "medium_shot": (counts > FEW_SHOT_MAX) & (counts < MANY_SHOT_MIN),
        "few_shot": counts <= FEW_SHOT_MAX,
    }


def _nanmean_or_none(values: np.ndarray) -> Optional[float]:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else None


def summarize(labels, top_k, label_counts) -> dict:
    """top1, top5, mean_per_class, many/medium/few_shot accuracies and counts, JSON-ready.

    top_k holds at least min(5, C) predicted classes per example, best first.
    """
    labels, top_k = np.asarray(labels, np.int64), np.asarray(top_k, np.int64)
    num_classes = len(label_counts)
    per_class = per_class_accuracy(labels, top_k[:, 0], num_classes)
    result = {
        "num_examples": int(labels.size),
        "num_classes": num_classes,
        "top1": top_k_accuracy(labels, top_k, 1),
        "top5": top_k_accuracy(labels, top_k, 5),
        "mean_per_class": _nanmean_or_none(per_class),
    }
    for group, mask in shot_groups(label_counts).items():
        result[group] = _nanmean_or_none(per_class[mask])
        result[f"{group}_classes"] = int(np.sum(mask & ~np.isnan(per_class)))
    return result


def format_table(summary: dict) -> str:
    """The summary as an aligned two-column text table."""
    rows = [(key, "n/a" if value is None else
             f"{value:.4f}" if isinstance(value, float) else str(value))
            for key, value in summary.items()]
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key:<{width}}  {value:>8}" for key, value in rows)


def read_scalars(log_dir: str) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} from every event file under `log_dir`, sorted by step.

    Reads the records with tf.data and `Event.FromString`, so it needs no `tensorboard`
    package. tf.summary writes scalars as tensors; both forms are handled.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    files = sorted(glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True))
    scalars = collections.defaultdict(list)
    for path in files:
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.HasField("tensor") and value.metadata.plugin_data.plugin_name == "scalars":
                    scalars[value.tag].append(
                        (event.step, float(tf.make_ndarray(value.tensor))))
                elif value.HasField("simple_value"):
                    scalars[value.tag].append((event.step, value.simple_value))
    return {tag: sorted(points) for tag, points in scalars.items()}


def read_image_tags(log_dir: str) -> set[str]:
    """Tags of image summaries under `log_dir` (for tests)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    tags = set()
    for path in glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True):
        for record in tf.data.TFRecordDataset(path):
            for value in tf.compat.v1.Event.FromString(record.numpy()).summary.value:
                if value.metadata.plugin_data.plugin_name == "images":
                    tags.add(value.tag)
    return tags

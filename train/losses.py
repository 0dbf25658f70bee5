"""The training loss: class-weighted softmax cross-entropy, and the L2 penalty on kernels.

Class weights come precomputed from the build (`class_weights.txt`, mean 1 over *classes*).
Averaged over training *samples* those weights are far below 1 on a long tail (the head classes
dominate the samples and have the smallest weights: ~1/2.6 on iNat2018), which silently scales
the loss and the effective learning rate down. `normalize_class_weights` rescales them so that
the mean weight over training samples is 1: w'_c = w_c / (sum_c n_c w_c / sum_c n_c).

Which variables count as "weights" for the L2 penalty and weight decay is decided here once
(`is_decayed`): conv and dense kernels; never biases or BatchNorm parameters.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def normalize_class_weights(class_weights, label_counts) -> np.ndarray:
    """Rescales per-class weights so that their mean over training samples is 1 (float32 [C])."""
    weights = np.asarray(class_weights, np.float64)
    counts = np.asarray(label_counts, np.float64)
    if weights.shape != counts.shape or weights.ndim != 1:
        raise ValueError(f"class weights {weights.shape} and label counts {counts.shape} must be "
                         "two vectors of the same length")
    per_sample_mean = float((counts * weights).sum() / counts.sum()) if counts.sum() > 0 else 0.0
    if per_sample_mean <= 0:
        raise ValueError("class weights are zero on every training sample: nothing to learn")
    return (weights / per_sample_mean).astype(np.float32)


def cross_entropy(labels, logits, label_smoothing: float = 0.0):
    """Per-example softmax cross-entropy [B] from int labels [B] and logits [B, C]."""
    num_classes = tf.shape(logits)[-1]
    targets = tf.one_hot(labels, num_classes, dtype=logits.dtype)
    if label_smoothing:
        targets = targets * (1.0 - label_smoothing) + label_smoothing / tf.cast(num_classes,
                                                                               logits.dtype)
    return tf.nn.softmax_cross_entropy_with_logits(labels=targets, logits=logits)


def batch_losses(labels, logits, sample_weights, global_batch_size: int,
                 label_smoothing: float = 0.0):
    """(weighted, unweighted) cross-entropy, each a sum over this replica's examples / global B.

    Dividing by the global batch (not by the sum of weights) keeps a rare-class example's extra
    weight meaningful; with weights normalised per sample the expected weighted loss still has
    the scale of the unweighted one. Summing the per-replica values gives the batch mean.
    """
    per_example = cross_entropy(labels, tf.cast(logits, tf.float32), label_smoothing)
    weighted = tf.reduce_sum(per_example * tf.cast(sample_weights, tf.float32)) / global_batch_size
    unweighted = tf.reduce_sum(per_example) / global_batch_size
    return weighted, unweighted


def is_decayed(variable) -> bool:
    """True for conv/dense kernels; biases, BatchNorm beta/gamma and other vectors are exempt."""
    return variable.name.endswith("kernel") and len(variable.shape) >= 2


def decayed_variables(variables) -> list:
    return [v for v in variables if is_decayed(v)]


def sum_of_squares(variables):
    """sum ||w||^2 over `variables`, float32."""
    return tf.add_n([tf.reduce_sum(tf.square(tf.cast(v, tf.float32))) for v in variables])


def l2_penalty(variables, coefficient: float):
    """The original's (slim's) regularisation loss: coefficient * sum ||w||^2 / 2."""
    return coefficient * 0.5 * sum_of_squares(variables)

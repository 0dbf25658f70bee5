"""Tests for train/losses.py: weight normalisation, weighted cross-entropy, the L2 penalty set.

    python -m pytest tests/test_losses.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from train import losses, models


def test_normalized_weights_average_one_over_training_samples():
    counts = np.array([1000, 100, 10, 0])
    inverse = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    class_mean_one = inverse * 4 / inverse.sum()  # what class_weights.txt holds
    weights = losses.normalize_class_weights(class_mean_one, counts)
    assert weights.dtype == np.float32
    assert np.sum(counts * weights) / counts.sum() == pytest.approx(1.0, rel=1e-6)
    # Ratios between classes are kept; a class without train records keeps weight 0.
    np.testing.assert_allclose(weights[:3] / weights[0], class_mean_one[:3] / class_mean_one[0],
                               rtol=1e-6)
    assert weights[3] == 0


def test_normalisation_undoes_the_long_tail_shrinkage_on_inat2018_like_counts():
    counts = np.round(1000 * np.arange(1, 201, dtype=np.float64) ** -1.2).astype(int) + 2
    inverse = 1.0 / counts
    class_mean_one = inverse * len(counts) / inverse.sum()
    # Mean over samples of the class-normalised weights is well below 1 on a long tail...
    assert np.sum(counts * class_mean_one) / counts.sum() < 0.5
    weights = losses.normalize_class_weights(class_mean_one, counts)
    assert np.sum(counts * weights) / counts.sum() == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("weights, counts", [([1.0, 2.0], [1, 2, 3]), ([0.0, 1.0], [5, 0])])
def test_normalisation_rejects_bad_inputs(weights, counts):
    with pytest.raises(ValueError):
        losses.normalize_class_weights(weights, counts)


def test_batch_losses_match_hand_computation():
    logits = tf.constant([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 3.0]])
    labels = tf.constant([0, 1, 2, 0])
    weights = tf.constant([0.5, 1.0, 2.0, 0.5])
    log_softmax = logits - tf.reduce_logsumexp(logits, axis=1, keepdims=True)
    ce = -tf.gather(log_softmax, labels, batch_dims=1).numpy()
    weighted, unweighted = losses.batch_losses(labels, logits, weights, global_batch_size=4)
    assert float(unweighted) == pytest.approx(ce.mean(), rel=1e-6)
    assert float(weighted) == pytest.approx((ce * weights.numpy()).sum() / 4, rel=1e-6)
    # Two replicas, each with half the batch, sum to the same numbers.
    halves = [losses.batch_losses(labels[i:i + 2], logits[i:i + 2], weights[i:i + 2], 4)
              for i in (0, 2)]
    assert float(halves[0][0] + halves[1][0]) == pytest.approx(float(weighted), rel=1e-6)


def test_label_smoothing_spreads_the_target():
    logits = tf.constant([[0.0, 0.0, 0.0, 0.0]])
    assert float(losses.cross_entropy([0], logits, 0.1)[0]) == pytest.approx(np.log(4), rel=1e-6)
    confident = tf.constant([[20.0, 0.0, 0.0, 0.0]])
    plain = float(losses.cross_entropy([0], confident)[0])
    smoothed = float(losses.cross_entropy([0], confident, 0.1)[0])
    assert plain < 1e-6 < smoothed  # smoothing penalises over-confidence


def test_l2_penalty_is_half_the_coefficient_times_the_sum_of_squares():
    a, b = tf.Variable(tf.ones([2, 3])), tf.Variable(2.0 * tf.ones([4, 1]))
    assert float(losses.l2_penalty([a, b], 4e-5)) == pytest.approx(4e-5 * (6 + 16) / 2)


def _decayed_names(model):
    return ({v.path for v in model.trainable_variables if losses.is_decayed(v)},
            {v.path for v in model.trainable_variables if not losses.is_decayed(v)})


def test_only_kernels_are_decayed_in_the_small_cnn():
    decayed, exempt = _decayed_names(models.small_cnn(num_classes=3, image_size=32))
    assert decayed and all(p.endswith("kernel") for p in decayed)
    assert exempt and all(p.endswith(("bias", "beta", "gamma")) for p in exempt)
    assert "logits/bias" in exempt


def test_only_kernels_are_decayed_in_inception_resnet_v2():
    decayed, exempt = _decayed_names(models.inception_resnet_v2(num_classes=3, image_size=75))
    # 244 convs + the new head; every conv2d_bn BatchNorm has beta only (scale=False), and the
    # residual up-projections and the head have biases: none of those may be decayed.
    assert len(decayed) == 245 and all(p.endswith("kernel") for p in decayed)
    assert all(p.endswith(("bias", "beta")) for p in exempt)
    assert sum(p.endswith("beta") for p in exempt) > 150
    assert sum(p.endswith("bias") for p in exempt) > 40

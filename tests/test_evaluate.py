"""Tests for train/metrics.py on a hand-made prediction set (evaluation math, no model).

    python -m pytest tests/test_evaluate.py -q

The end-to-end `python -m train.evaluate` run is in tests/test_train.py, on a trained run.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from train import metrics

# 4 classes: 0 many-shot (150 train images), 1 medium (50), 2 and 3 few-shot (5, 0).
LABEL_COUNTS = [150, 50, 5, 0]
# 8 examples; top-k rows list classes best first.
LABELS = np.array([0, 0, 0, 0, 1, 1, 2, 2])
TOP_K = np.array([
    [0, 1, 2, 3],  # right
    [0, 2, 1, 3],  # right
    [0, 1, 3, 2],  # right
    [1, 0, 2, 3],  # wrong, in top 2
    [1, 0, 2, 3],  # right
    [2, 3, 0, 1],  # wrong, last
    [3, 1, 0, 2],  # wrong, last
    [0, 1, 3, 2],  # wrong, last
])


def test_top_k_accuracy():
    assert metrics.top_k_accuracy(LABELS, TOP_K, 1) == pytest.approx(4 / 8)
    assert metrics.top_k_accuracy(LABELS, TOP_K, 2) == pytest.approx(5 / 8)
    # k larger than the number of predicted classes: every label is somewhere in the list.
    assert metrics.top_k_accuracy(LABELS, TOP_K, 5) == pytest.approx(1.0)


def test_per_class_accuracy_marks_classes_without_examples():
    per_class = metrics.per_class_accuracy(LABELS, TOP_K[:, 0], 4)
    np.testing.assert_allclose(per_class[:3], [3 / 4, 1 / 2, 0.0])
    assert np.isnan(per_class[3])


def test_summary_on_the_hand_made_set():
    summary = metrics.summarize(LABELS, TOP_K, LABEL_COUNTS)
    assert summary["num_examples"] == 8 and summary["num_classes"] == 4
    assert summary["top1"] == pytest.approx(0.5)
    assert summary["top5"] == pytest.approx(1.0)
    # Mean over the classes that have examples: (0.75 + 0.5 + 0) / 3, not the 0.5 of top-1.
    assert summary["mean_per_class"] == pytest.approx(1.25 / 3)
    assert summary["many_shot"] == pytest.approx(0.75)
    assert summary["medium_shot"] == pytest.approx(0.5)
    assert summary["few_shot"] == pytest.approx(0.0)  # class 3 has no val examples: not counted
    assert (summary["many_shot_classes"], summary["medium_shot_classes"],
            summary["few_shot_classes"]) == (1, 1, 1)
    json.dumps(summary)  # JSON-ready as is


def test_a_group_without_classes_is_none():
    summary = metrics.summarize(LABELS, TOP_K, [15, 10, 5, 1])  # all few-shot
    assert summary["many_shot"] is None and summary["medium_shot"] is None
    assert summary["few_shot"] == pytest.approx(summary["mean_per_class"])
    assert "n/a" in metrics.format_table(summary)


def test_shot_group_boundaries():
    groups = metrics.shot_groups([100, 99, 20, 19, 0])
    assert groups["many_shot"].tolist() == [True, False, False, False, False]
    assert groups["medium_shot"].tolist() == [False, True, True, False, False]
    assert groups["few_shot"].tolist() == [False, False, False, True, True]

"""Tests for pipeline.weights: each scheme on hand-computed cases, zero classes, text files."""

import logging

import numpy as np
import pytest

from pipeline import weights
from pipeline.weights import class_weights, counts_to_text, weighting_description, weights_to_text


@pytest.mark.parametrize("scheme,counts,expected", [
    # raw 1, 1/2, 1/4 (sum 7/4), scaled by 3 / (7/4) = 12/7.
    ("inverse", [1, 2, 4], [12 / 7, 6 / 7, 3 / 7]),
    ("inverse", [5, 5], [1.0, 1.0]),
    # raw 1, 1/2, 1/4 again.
    ("inverse_sqrt", [1, 4, 16], [12 / 7, 6 / 7, 3 / 7]),
    ("inverse_sqrt", [9, 1], [0.5, 1.5]),
])
def test_inverse_schemes_hand_computed(scheme, counts, expected):
    np.testing.assert_allclose(class_weights(counts, scheme), expected, rtol=1e-12)


def test_effective_number_hand_computed():
    # beta 0.5: raw 0.5/0.5 = 1, 0.5/0.75 = 2/3, 0.5/0.875 = 4/7; sum 47/21; scale 3 * 21/47.
    np.testing.assert_allclose(class_weights([1, 2, 3], "effective_number", beta=0.5),
                               [63 / 47, 42 / 47, 36 / 47], rtol=1e-12)


def test_effective_number_limits():
    counts = [1, 10, 100, 1000]
    np.testing.assert_allclose(class_weights(counts, "effective_number", beta=0.0), np.ones(4))
    # As beta -> 1 the effective number tends to n_c, so the weights tend to inverse frequency.
    np.testing.assert_allclose(class_weights(counts, "effective_number", beta=1 - 1e-9),
                               class_weights(counts, "inverse"), rtol=1e-5)
    # With beta close to 1 and small counts, 1 - beta**n must not lose its digits.
    w = class_weights([1, 2], "effective_number", beta=1 - 1e-12)
    np.testing.assert_allclose(w, [4 / 3, 2 / 3], rtol=1e-6)


def test_default_scheme_is_inverse():
    np.testing.assert_array_equal(class_weights([1, 3]), class_weights([1, 3], "inverse"))


@pytest.mark.parametrize("scheme", weights.SCHEMES)
def test_normalised_to_mean_one_over_present_classes(scheme):
    counts = np.array([0, 3, 50, 0, 7, 1200, 1])
    with_zeros = class_weights(counts, scheme, beta=0.99)
    assert with_zeros.dtype == np.float64 and with_zeros.shape == (7,)
    assert with_zeros[0] == 0.0 and with_zeros[3] == 0.0
    assert with_zeros[counts > 0].mean() == pytest.approx(1.0, rel=1e-12)
    # Zero classes do not change the others' weights.
    np.testing.assert_allclose(with_zeros[counts > 0],
                               class_weights(counts[counts > 0], scheme, beta=0.99), rtol=1e-12)
    # Rarer classes weigh more.
    order = np.argsort(counts[counts > 0])
    assert np.all(np.diff(with_zeros[counts > 0][order]) < 0)


def test_zero_classes_warn_once_naming_them(caplog):
    counts = [0, 5] + [0] * 14 + [7]  # 15 zero classes: indices 0 and 2..15
    with caplog.at_level(logging.WARNING, logger="pipeline.weights"):
        w = class_weights(counts)
    records = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(records) == 1
    message = records[0].getMessage()
    assert "15 of 17 classes" in message
    assert "indices 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, ..." in message
    assert "16" not in message.split("indices")[1]  # capped at 10 listed indices
    assert np.count_nonzero(w) == 2


def test_no_warning_without_zero_classes(caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline.weights"):
        class_weights([1, 2, 3])
    assert not caplog.records


def test_long_tailed_counts():
    # iNat-like long tail: 8,000 classes, Zipf-like counts from 1,000 down to a floor of 2.
    rank = np.arange(1, 8001)
    counts = np.maximum(2, np.round(1000 / rank ** 0.9)).astype(int)
    w = class_weights(counts, "inverse")
    assert w.mean() == pytest.approx(1.0)
    # Inverse frequency: w_c * n_c is the same for every class, so the range is the count range.
    np.testing.assert_allclose(w * counts, (w * counts)[0], rtol=1e-12)
    assert w.max() / w.min() == pytest.approx(1000 / 2)
    assert np.argmin(w) == 0 and w[-1] == w.max()
    # Most classes are rare: the tail weighs above the mean, the head far below it.
    assert 1.0 < w.max() < 2.0 and w.min() < 0.01
    w_sqrt = class_weights(counts, "inverse_sqrt")
    assert w_sqrt.max() / w_sqrt.min() == pytest.approx(np.sqrt(1000 / 2))
    w_eff = class_weights(counts, "effective_number", beta=0.999)
    # Effective number saturates for large classes: a range narrower than inverse frequency.
    assert 1 < w_eff.max() / w_eff.min() < w.max() / w.min()


def test_counts_text_round_trip(tmp_path):
    counts = [3, 0, 12, 100000, 1]
    text = counts_to_text(np.array(counts, dtype=np.int32))
    assert text == "3\n0\n12\n100000\n1\n"
    path = tmp_path / "label_counts.txt"
    path.write_text(text)
    loaded = np.loadtxt(path, dtype=int)
    np.testing.assert_array_equal(loaded, counts)
    assert counts_to_text([4.0, 2.0]) == "4\n2\n"  # integral floats are fine


def test_weights_text_round_trip_exactly(tmp_path):
    w = class_weights([1, 3, 7, 0, 1000], "effective_number", beta=0.9999)
    text = weights_to_text(w)
    assert text.endswith("\n") and text.count("\n") == 5
    path = tmp_path / "class_weights.txt"
    path.write_text(text)
    np.testing.assert_array_equal(np.loadtxt(path), w)  # bit-exact, not just close


def test_weighting_description():
    inverse = weighting_description("inverse", 0.999)
    assert inverse == {"scheme": "inverse", "beta": None,
                       "formula": inverse["formula"]}
    assert "1 / n_c" in inverse["formula"] and "mean over classes with n_c > 0 is 1" in (
        inverse["formula"])
    effective = weighting_description("effective_number", 0.99)
    assert effective["beta"] == 0.99 and "beta**n_c" in effective["formula"]
    assert "sqrt" in weighting_description("inverse_sqrt", 0.5)["formula"]


@pytest.mark.parametrize("counts,scheme,beta,match", [
    ([1, -2, 3], "inverse", 0.9, "class 1 has count -2"),
    ([0, 0, 0], "inverse", 0.9, "all 3 class counts are zero"),
    ([], "inverse", 0.9, "non-empty 1-D"),
    ([[1, 2], [3, 4]], "inverse", 0.9, "non-empty 1-D"),
    ([1, 2.5], "inverse", 0.9, "class 1 has count 2.5"),
    ([1, float("nan")], "inverse", 0.9, "class 1"),
    (["a", "b"], "inverse", 0.9, "integers"),
    ([1, 2], "inverse_frequency", 0.9, "unknown class weighting scheme 'inverse_frequency'"),
    ([1, 2], "effective_number", 1.0, r"beta must be in \[0, 1\)"),
    ([1, 2], "effective_number", -0.1, r"beta must be in \[0, 1\)"),
    ([1, 2], "effective_number", float("nan"), r"beta must be in \[0, 1\)"),
    ([1, 2], "inverse", 1.5, r"beta must be in \[0, 1\)"),
])
def test_class_weights_errors(counts, scheme, beta, match):
    with pytest.raises(ValueError, match=match):
        class_weights(counts, scheme, beta)


def test_text_and_description_errors():
    with pytest.raises(ValueError, match="non-negative"):
        counts_to_text([1, -1])
    with pytest.raises(ValueError, match="integers"):
        counts_to_text([1, 0.5])
    with pytest.raises(ValueError, match="finite"):
        weights_to_text([1.0, float("inf")])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        weights_to_text([])
    with pytest.raises(ValueError, match="unknown class weighting scheme"):
        weighting_description("focal", 0.9)
    with pytest.raises(ValueError, match="beta"):
        weighting_description("effective_number", 1.0)

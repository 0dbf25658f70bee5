"""Per-class loss weights from per-class training counts, and the text files that hold both.

The build job counts the train records it wrote per class, then writes `label_counts.txt`
(`counts_to_text`) and `class_weights.txt` (`weights_to_text`, from `class_weights`), and
records `weighting_description` in build_info.json. The trainer loads both files with
`np.loadtxt(path, ndmin=1)`.

Schemes, for a class with n_c > 0 training records (classes with n_c = 0 get weight 0):

- inverse: 1 / n_c (the original script's `multiplier`);
- inverse_sqrt: 1 / sqrt(n_c), a milder rebalancing;
- effective_number: (1 - beta) / (1 - beta**n_c), Cui et al. 2019, "Class-Balanced Loss Based
  on Effective Number of Samples"; beta = 0 gives equal weights, beta -> 1 tends to inverse.

Every scheme is normalised so that the mean weight over classes with n_c > 0 is 1, which keeps
the loss scale (and so the learning rate) comparable across schemes.
"""

from __future__ import annotations

import logging
import math

import numpy as np

logger = logging.getLogger(__name__)

SCHEMES = ("inverse", "inverse_sqrt", "effective_number")

_NORMALISATION = "normalised so the mean over classes with n_c > 0 is 1; w_c = 0 if n_c = 0"
_FORMULAS = {
    "inverse": "w_c = 1 / n_c",
    "inverse_sqrt": "w_c = 1 / sqrt(n_c)",
    "effective_number": "w_c = (1 - beta) / (1 - beta**n_c)",
}
_MAX_LISTED = 10  # zero-count class indices named in the warning


def class_weights(counts, scheme: str = "inverse", beta: float = 0.999) -> np.ndarray:
    """One float64 weight per class from per-class counts (see the module docstring).

    Raises ValueError for an unknown scheme, beta outside [0, 1), counts that are not a
    non-empty 1-D sequence of non-negative integers, or counts that are all zero.
    """
    _check_scheme(scheme, beta)
    n = _as_counts(counts).astype(np.float64)
    present = n > 0
    if not present.any():
        raise ValueError(f"class_weights: all {n.size} class counts are zero; nothing to weight")
    zero = np.flatnonzero(~present)
    if zero.size:
        listed = ", ".join(str(i) for i in zero[:_MAX_LISTED])
        logger.warning("class_weights: %d of %d classes have no training records and get weight "
                       "0: indices %s%s", zero.size, n.size, listed,
                       ", ..." if zero.size > _MAX_LISTED else "")

    n_present = n[present]
    if scheme == "inverse":
        raw = 1.0 / n_present
    elif scheme == "inverse_sqrt":
        raw = 1.0 / np.sqrt(n_present)
    elif beta == 0.0:
        raw = np.ones_like(n_present)  # beta**n_c = 0 for every n_c > 0
    else:
        # 1 - beta**n computed as -expm1(n log beta): exact where beta**n is close to 1, i.e.
        # beta near 1 (the usual 0.999-0.9999) with small counts.
        raw = (1.0 - beta) / -np.expm1(n_present * math.log(beta))
    weights = np.zeros(n.size, dtype=np.float64)
    weights[present] = raw * (n_present.size / raw.sum())
    return weights


def weighting_description(scheme: str, beta: float) -> dict:
    """What build_info.json records about the weights: scheme, formula, beta (or None)."""
    _check_scheme(scheme, beta)
    return {"scheme": scheme,
            "formula": f"{_FORMULAS[scheme]}, {_NORMALISATION}",
            "beta": float(beta) if scheme == "effective_number" else None}


def counts_to_text(counts) -> str:
    """label_counts.txt: one integer per line, class-index order, trailing newline."""
    return "".join(f"{c}\n" for c in _as_counts(counts).tolist())


def weights_to_text(weights) -> str:
    """class_weights.txt: one float per line; repr is the shortest text that round-trips."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"weights must be a non-empty 1-D sequence, got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError(f"weights must be finite; index {int(np.flatnonzero(~np.isfinite(w))[0])}"
                         " is not")
    return "".join(f"{x!r}\n" for x in w.tolist())


def _check_scheme(scheme: str, beta: float) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown class weighting scheme {scheme!r}; expected one of {SCHEMES}")
    # Checked for every scheme: a nonsense beta is a configuration error even where unused.
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1) for class weighting, got {beta!r}")


def _as_counts(counts) -> np.ndarray:
    """Counts as a 1-D int64 array; ValueError unless non-empty, integral and non-negative."""
    arr = np.asarray(counts)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"counts must be a non-empty 1-D sequence, got shape {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"counts must be integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        fractional = ~np.isfinite(arr) | (arr != np.round(arr))
        if fractional.any():
            i = int(np.flatnonzero(fractional)[0])
            raise ValueError(f"counts must be integers; class {i} has count {arr[i].item()!r}")
    if (arr < 0).any():
        i = int(np.flatnonzero(arr < 0)[0])
        raise ValueError(f"counts must be non-negative; class {i} has count {arr[i].item()}")
    return arr.astype(np.int64)

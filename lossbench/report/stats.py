"""Significance of a difference between two losses, paired by seed."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

TESTS = ("auto", "ttest", "wilcoxon")
# With fewer pairs the signed-rank test cannot reach p < 0.05 (its smallest two-sided p is 2 / 2^n).
WILCOXON_MIN_PAIRS = 10


def paired_test(a: Sequence[float], b: Sequence[float], method: str = "auto") -> tuple[float, str]:
    """Two-sided p-value for H0: the paired differences a_i - b_i are centred on 0.

    ``ttest``: Student's paired t-test, t = mean(d) / (sd(d) / sqrt(n)) with n - 1
    degrees of freedom (scipy.stats.ttest_rel). ``wilcoxon``: the Wilcoxon
    signed-rank test (scipy.stats.wilcoxon), free of the normality assumption.
    ``auto``: the t-test below 10 pairs, Wilcoxon from 10 on. Returns (p, name
    of the test used); p is NaN with fewer than two pairs, 1 when every
    difference is 0, and 0 when every difference is the same non-zero number
    (equal within 8 ulps of the largest value: rounding is not a difference).
    """
    if method not in TESTS:
        raise ValueError(f"unknown test '{method}'; known: {', '.join(TESTS)}")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    if method == "auto":
        method = "wilcoxon" if n >= WILCOXON_MIN_PAIRS else "ttest"
    if n < 2:
        return float("nan"), method
    # differences equal up to float rounding (accuracies k/n read back from JSON) count as equal: the
    # tests' moments would cancel catastrophically (scipy warns) and their p would be noise
    scale = float(np.abs(np.concatenate([np.asarray(a, dtype=float), np.asarray(b, dtype=float)])).max())
    tie = 8 * np.finfo(float).eps * max(scale, 1.0)
    if np.all(np.abs(d) <= tie):
        return 1.0, method
    if np.all(np.abs(d - d[0]) <= tie):
        return 0.0, method
    if method == "ttest":
        p = stats.ttest_rel(a, b).pvalue
    else:
        p = stats.wilcoxon(a, b).pvalue
    return (float(p) if math.isfinite(p) else 1.0), method

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
    difference is 0, and 0 when every difference is the same non-zero number.
    """
    if method not in TESTS:
        raise ValueError(f"unknown test '{method}'; known: {', '.join(TESTS)}")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    if method == "auto":
        method = "wilcoxon" if n >= WILCOXON_MIN_PAIRS else "ttest"
    if n < 2:
        return float("nan"), method
    if np.all(d == 0):
        return 1.0, method
    if np.all(d == d[0]):
        return 0.0, method
    if method == "ttest":
        p = stats.ttest_rel(a, b).pvalue
    else:
        p = stats.wilcoxon(a, b).pvalue
    return (float(p) if math.isfinite(p) else 1.0), method

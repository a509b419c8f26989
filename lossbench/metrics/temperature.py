"""Temperature scaling: one scalar T > 0 fitted on held-out data by minimizing NLL."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

T_BOUNDS = (1e-2, 1e2)


def fit_temperature(logits: Tensor, labels: Tensor, bounds: tuple[float, float] = T_BOUNDS) -> float:
    """argmin_T -(1/n) sum_i log softmax(z_i / T)_{y_i}, searched over log T in log(bounds).

    Guo et al. 2017, "On Calibration of Modern Neural Networks", ICML. The NLL
    is convex in 1/T, hence unimodal in log T, so a bounded Brent search finds
    the minimum without a learning rate or an initial guess. T = 1 is kept
    when the split is empty, the logits are not finite, or no T beats it.
    """
    if len(labels) == 0:
        return 1.0
    z = logits.double()
    if not bool(z.isfinite().all()):
        return 1.0

    def nll_at(log_t: float) -> float:
        return F.cross_entropy(z / math.exp(log_t), labels).item()

    result = minimize_bounded(nll_at, math.log(bounds[0]), math.log(bounds[1]), xatol=1e-6)
    if not (math.isfinite(result.fun) and result.fun < nll_at(0.0)):
        return 1.0
    return math.exp(result.x)


@dataclass(frozen=True)
class Minimum:
    """Where a bounded search stopped: x, f(x), and how many times it called f."""

    x: float
    fun: float
    nfev: int


GOLDEN = (3.0 - math.sqrt(5.0)) / 2  # the golden-section fraction, 0.381966...
SQRT_EPS = math.sqrt(2.2e-16)


def minimize_bounded(f: Callable[[float], float], low: float, high: float, xatol: float = 1e-5,
                     maxfun: int = 500) -> Minimum:
    """Brent's minimization on [low, high] without derivatives: parabolic steps through the three
    best points, golden-section steps where a parabola is not trusted; stops when the best x is
    within 2 tol of the bracket's middle and half the bracket, tol = sqrt(eps) |x| + xatol / 3.

    Brent 1973, "Algorithms for Minimization without Derivatives", ch. 5 (procedure localmin), with
    Forsythe, Malcolm and Moler's absolute tolerance. It is the method of scipy's
    ``minimize_scalar(method="bounded")`` and returns its x, f(x) and call count to the bit
    (tests/metrics/test_temperature.py checks that against scipy). It is here because importing
    scipy.optimize costs a run about 0.25 s of CPU (5% of the default run; benchmarks/overhead.md).
    """
    a, b = float(low), float(high)
    x = w = v = a + GOLDEN * (b - a)
    fx = fw = fv = f(x)
    nfev = 1
    d = e = 0.0  # this step and the one before the last
    while nfev < maxfun:
        middle = 0.5 * (a + b)
        tol1 = SQRT_EPS * abs(x) + xatol / 3.0
        tol2 = 2.0 * tol1
        if abs(x - middle) <= tol2 - 0.5 * (b - a):
            break
        golden = True
        if abs(e) > tol1:  # the parabola through (v, fv), (w, fw), (x, fx): its vertex is x + p / q
            r = (x - w) * (fx - fv)
            q = (x - v) * (fx - fw)
            p = (x - v) * q - (x - w) * r
            q = 2.0 * (q - r)
            if q > 0.0:
                p = -p
            q = abs(q)
            e_before, e = e, d
            if abs(p) < abs(0.5 * q * e_before) and q * (a - x) < p < q * (b - x):
                golden = False
                d = p / q
                if (x + d) - a < tol2 or b - (x + d) < tol2:  # too near an end: step tol1 towards the middle
                    d = tol1 if middle >= x else -tol1
        if golden:
            e = (a - x) if x >= middle else (b - x)
            d = GOLDEN * e
        u = x + d if abs(d) >= tol1 else x + (tol1 if d >= 0 else -tol1)  # never closer than tol1
        fu = f(u)
        nfev += 1
        if fu <= fx:
            if u >= x:
                a = x
            else:
                b = x
            v, fv, w, fw, x, fx = w, fw, x, fx, u, fu
        else:
            if u < x:
                a = u
            else:
                b = u
            if fu <= fw or w == x:
                v, fv, w, fw = w, fw, u, fu
            elif fu <= fv or v == x or v == w:
                v, fv = u, fu
    return Minimum(x, fx, nfev)


def scale(logits: Tensor, temperature: float) -> Tensor:
    """Logits divided by the temperature, z / T, at the logits' precision (float32 for half types)."""
    return (logits if logits.dtype == torch.float64 else logits.float()) / temperature

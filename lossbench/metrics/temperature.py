"""Temperature scaling: one scalar T > 0 fitted on held-out data by minimizing NLL."""

from __future__ import annotations

import math

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

    low, high = math.log(bounds[0]), math.log(bounds[1])
    from scipy.optimize import minimize_scalar  # here: scipy.optimize costs 0.5 s to import

    result = minimize_scalar(nll_at, bounds=(low, high), method="bounded", options={"xatol": 1e-6})
    if not (math.isfinite(result.fun) and result.fun < nll_at(0.0)):
        return 1.0
    return math.exp(result.x)


def scale(logits: Tensor, temperature: float) -> Tensor:
    """Logits divided by the temperature, z / T, at the logits' precision (float32 for half types)."""
    return (logits if logits.dtype == torch.float64 else logits.float()) / temperature

"""SmoothECE (Blasiok and Nakkiran 2023) and its smoothed reliability curve, through relplot.

SmoothECE replaces the bins of ECE by a reflected Gaussian kernel: with
residuals r_i = f_i - y_i, the kernel-smoothed residual
r_hat(t) = sum_i K_s(t, f_i) r_i / sum_i K_s(t, f_i) and the kernel density
d_hat(t) of the predictions, smECE_s = integral |r_hat(t)| d_hat(t) dt, at
the bandwidth s* that solves smECE_s = s (the paper's fixed point, which
relplot finds by bisection). relplot (the authors' package, pip install
relplot==1.0.3) computes it on a grid; lossbench calls it and does not
re-implement it. Blasiok and Nakkiran 2023, "Smooth ECE: Principled
Reliability Diagrams via Kernel Smoothing" (ICLR 2024).

Multiclass variants (as for binned ECE): top-label (confidence calibration),
f_i = max_k p_ik and y_i = [argmax_k p_ik = label_i]; classwise, the mean over
classes k of smECE(p_ik, [label_i = k]).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import Tensor

log = logging.getLogger("lossbench")

RELPLOT_HINT = "SmoothECE needs relplot: pip install relplot==1.0.3 (or pip install 'lossbench[calibration]')"
_warned = False


def relplot_available() -> bool:
    """True when relplot imports; warns once (with the pip command) when it does not."""
    global _warned
    try:
        import relplot  # noqa: F401
    except ImportError:
        if not _warned:
            log.warning("%s; SmoothECE figures are left out of the summary", RELPLOT_HINT)
            _warned = True
        return False
    return True


def _relplot():
    try:
        import relplot
    except ImportError:
        raise ImportError(RELPLOT_HINT) from None
    return relplot


def _top_label(probs: Tensor, labels: Tensor) -> tuple[np.ndarray, np.ndarray]:
    confidence, prediction = probs.max(dim=1)
    return confidence.double().cpu().numpy(), (prediction == labels).double().cpu().numpy()


def smooth_ece_binary(f: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(smECE, bandwidth s*) of predictions f in [0, 1] of binary outcomes y: relplot.smECE."""
    value, sigma = _relplot().smECE(np.asarray(f, dtype=np.float64), np.asarray(y, dtype=np.float64),
                                    return_width=True)
    return float(value), float(sigma)


def smooth_ece(probs: Tensor, labels: Tensor) -> tuple[float, float]:
    """Top-label SmoothECE of probability rows and its bandwidth: (smECE, s*)."""
    if len(labels) == 0:
        return float("nan"), float("nan")
    return smooth_ece_binary(*_top_label(probs, labels))


def smooth_ece_classwise(probs: Tensor, labels: Tensor) -> float:
    """(1/C) sum_k smECE(p_k, [y = k]): SmoothECE of each class's probability, averaged."""
    if len(labels) == 0:
        return float("nan")
    p = probs.double().cpu().numpy()
    onehot = torch.nn.functional.one_hot(labels.cpu(), p.shape[1]).double().numpy()
    return float(np.mean([smooth_ece_binary(p[:, k], onehot[:, k])[0] for k in range(p.shape[1])]))


def smooth_reliability(probs: Tensor, labels: Tensor, mesh_points: int = 101) -> dict:
    """The smoothed top-label reliability curve at SmoothECE's bandwidth, on an even mesh of [0, 1].

    ``mu``: kernel regression of correctness on confidence (relplot's KernelSmoother with its
    reflected Gaussian kernel); ``density``: kernel density of the confidences; ``sigma``: s*.
    """
    _relplot()  # the one-line hint when it is missing
    from relplot.estimators import KernelSmoother
    from relplot.kernels import ReflectedGaussianKernel

    f, y = _top_label(probs, labels)
    _, sigma = smooth_ece_binary(f, y)
    mesh = np.linspace(0.0, 1.0, mesh_points)
    kernel = ReflectedGaussianKernel(sigma)
    mu = KernelSmoother(kernel).fit(f.reshape(-1, 1), y).predict(mesh.reshape(-1, 1))
    density = kernel.kde(f, mesh)
    return {"sigma": sigma, "mu": [round(float(v), 6) for v in mu],
            "density": [round(float(v), 6) for v in density]}

"""Multinomial logistic regression on given features, the fit behind matrix scaling and Dirichlet calibration.

q_i = softmax(W x_i + b), (W, b) = argmin (1/n) sum_i -log q_{i, y_i} + lam sum_{j != k} W_jk^2
+ mu sum_j b_j^2 (the off-diagonal and intercept penalty of Kull et al. 2019), started at
W = I, b = 0. With ``ref_row`` the last row of (W, b) is held at 0, as dirichletcal does (it
leaves q unchanged; only the penalty sees the difference).

For up to NEWTON_MAX_CLASSES classes the fit is Newton's method with the exact Hessian,
H = (1/n) sum_i (diag q_i - q_i q_i^T) (x) (x~_i x~_i^T) + the penalty's diagonal, x~ = [x, 1],
and a backtracking line search (as dirichletcal's own fit, which stops at a summed |gradient|
below 1e-8); above that, L-BFGS (float64, strong Wolfe).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench.calibrate.base import lbfgs

NEWTON_MAX_CLASSES = 36


def _objective(x1: Tensor, onehot: Tensor, theta: Tensor, off: Tensor, lam: float, mu: float) -> Tensor:
    logits = x1 @ theta.T
    w, b = theta[:, :-1], theta[:, -1]
    return (-(onehot * F.log_softmax(logits, 1)).sum(1).mean() + lam * ((w * off) ** 2).sum()
            + mu * (b**2).sum())


def fit_affine_softmax(x: Tensor, labels: Tensor, lam: float = 0.0, mu: float = 0.0,
                       ref_row: bool = False, max_iter: int = 200) -> tuple[Tensor, Tensor]:
    """(W [C, C], b [C]) of the penalised multinomial regression of ``labels`` on ``x`` (float64)."""
    x = x.double()
    n, c = x.shape
    x1 = torch.cat((x, torch.ones(n, 1, dtype=x.dtype, device=x.device)), 1)
    onehot = F.one_hot(labels, c).double()
    eye = torch.eye(c, dtype=x.dtype, device=x.device)
    off_full = torch.cat((1.0 - eye, torch.zeros(c, 1, dtype=x.dtype, device=x.device)), 1)
    theta0 = torch.cat((eye, torch.zeros(c, 1, dtype=x.dtype, device=x.device)), 1)  # [C, C+1]
    if ref_row:
        theta0 = theta0 - theta0[-1]
    rows = c - 1 if ref_row else c

    def full(free: Tensor) -> Tensor:
        if not ref_row:
            return free
        return torch.cat((free, torch.zeros(1, c + 1, dtype=x.dtype, device=x.device)))

    off = 1.0 - eye
    free = theta0[:rows].clone()
    if c > NEWTON_MAX_CLASSES:
        free.requires_grad_(True)
        lbfgs([free], lambda: _objective(x1, onehot, full(free), off, lam, mu))
        theta = full(free.detach())
        return theta[:, :-1].contiguous(), theta[:, -1].contiguous()

    penalty = torch.cat((2 * lam * off_full[:rows, :-1], torch.full((rows, 1), 2 * mu, dtype=x.dtype,
                                                                     device=x.device)), 1).flatten()
    loss = _objective(x1, onehot, full(free), off, lam, mu)
    for _ in range(max_iter):
        theta = full(free)
        q = (x1 @ theta.T).softmax(1)
        grad = ((q - onehot).T @ x1 / n)[:rows] + 2 * lam * theta[:rows] * off_full[:rows] \
            + torch.cat((torch.zeros(rows, c, dtype=x.dtype, device=x.device), 2 * mu * theta[:rows, -1:]), 1)
        g = grad.flatten()
        if g.abs().sum() < 1e-10:
            break
        qr = q[:, :rows]
        # sum_i (diag q_i - q_i q_i^T)_{ab} x~_ip x~_ir, laid out as [(a, p), (b, r)]
        qx = (qr[:, :, None] * x1[:, None, :]).reshape(n, -1)  # [n, (a, p)]
        hessian = -(qx.T @ qx)
        d1 = c + 1
        for a in range(rows):
            hessian[a * d1:(a + 1) * d1, a * d1:(a + 1) * d1] += (x1 * qr[:, a:a + 1]).T @ x1
        hessian = hessian / n + torch.diag(penalty)
        step = torch.linalg.lstsq(hessian, g.unsqueeze(1)).solution.squeeze(1).view(rows, c + 1)
        for size in [1.0 / 2**k for k in range(40)]:
            candidate = free - size * step
            value = _objective(x1, onehot, full(candidate), off, lam, mu)
            if value < loss:
                break
        else:
            break
        if loss - value < 1e-15:
            free, loss = candidate, value
            break
        free, loss = candidate, value
    theta = full(free)
    return theta[:, :-1].contiguous(), theta[:, -1].contiguous()

"""Dirichlet calibration with off-diagonal and intercept regularisation (Kull et al. 2019)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench.calibrate.affine import fit_affine_softmax
from lossbench.calibrate.base import Calibrator, Fitted, register_calibrator


@register_calibrator("dirichlet")
class DirichletCalibration(Calibrator):
    """q = softmax(W log p + b) with p = softmax(z): multinomial logistic regression on log-probabilities.

    Fitted by NLL plus ODIR, the off-diagonal and intercept regularisation,
    lambda / (C(C-1)) sum_{i!=j} W_ij^2 + mu / C sum_j b_j^2 (Kull et al. 2019,
    "Beyond temperature scaling: Obtaining well-calibrated multiclass
    probabilities with Dirichlet calibration", NeurIPS, eq. for ODIR; with
    ``reg_norm: false`` the raw lambda and mu multiply the sums).

    ``ref_row: true`` (default) is the authors' package (dirichletcal 0.5.3,
    FullDirichletCalibrator with ref_row=True): W and b are taken relative to
    their last row (W_ij - W_Cj, b_j - b_C, which leaves q unchanged) and the
    penalty applies to those relative weights. ``ref_row: false`` penalises W
    and b as they are, the paper's literal form. Both minimise the same NLL; the
    penalties, hence the fits, differ slightly. Both the package (through jax)
    and lossbench (lossbench.calibrate.affine) fit by Newton's method in float64;
    the tests check the two agree on fixed data.

    ``cv_grid``: the paper chooses lambda and mu by cross-validation. With a
    grid (default 1e-4 .. 10), lambda = mu is picked by ``cv_folds``-fold NLL on
    the validation split, then refitted on all of it; the chosen value is
    recorded (dir_reg_lambda_<view>). The grid, tying lambda = mu and the fold
    count are lossbench's choices. ``cv_grid: null`` uses ``reg_lambda`` and
    ``reg_mu`` as given; with both 0 the fit needs C(C+1) validation samples.
    """

    key = "dir"
    title = "Dirichlet calibration"
    paper = "Kull et al. 2019"

    def __init__(self, reg_lambda: float = 0.0, reg_mu: float = 0.0, reg_norm: bool = True,
                 ref_row: bool = True, cv_grid: Sequence[float] | None = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0),
                 cv_folds: int = 3, seed: int = 0) -> None:
        for name, value in (("reg_lambda", reg_lambda), ("reg_mu", reg_mu)):
            if not float(value) >= 0:
                raise ValueError(f"calibrator.dirichlet.{name} must be >= 0, got {value}")
        grid = [float(v) for v in cv_grid] if cv_grid else []
        if any(not v >= 0 for v in grid):
            raise ValueError(f"calibrator.dirichlet.cv_grid values must be >= 0, got {list(cv_grid)}")
        if grid and int(cv_folds) < 2:
            raise ValueError(f"calibrator.dirichlet.cv_folds must be >= 2 with a cv_grid, got {cv_folds}")
        self.reg_lambda, self.reg_mu = float(reg_lambda), float(reg_mu)
        self.reg_norm, self.ref_row = bool(reg_norm), bool(ref_row)
        self.cv_grid, self.cv_folds, self.seed = grid, int(cv_folds), int(seed)

    def num_params(self, num_classes: int) -> int:
        return num_classes * (num_classes + 1)

    def min_samples(self, num_classes: int) -> int:
        if self.cv_grid:
            return 2 * self.cv_folds
        return self.num_params(num_classes) if self.reg_lambda == 0 and self.reg_mu == 0 else 1

    def _scaled(self, reg_lambda: float, reg_mu: float, c: int) -> tuple[float, float]:
        if not self.reg_norm:
            return reg_lambda, reg_mu
        return (reg_lambda / (c * (c - 1)) if c > 1 else 0.0), reg_mu / c

    def fit_weights(self, x: Tensor, labels: Tensor, reg_lambda: float,
                    reg_mu: float) -> tuple[Tensor, Tensor]:
        """(W, b) minimising the regularised NLL on log-probabilities ``x`` (the effective weights)."""
        lam, mu = self._scaled(reg_lambda, reg_mu, x.shape[1])
        return fit_affine_softmax(x, labels, lam, mu, self.ref_row)

    def _cross_validate(self, x: Tensor, labels: Tensor) -> float:
        n = len(labels)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).to(x.device)
        folds = order.chunk(self.cv_folds)
        best, best_loss = self.cv_grid[0], float("inf")
        for value in self.cv_grid:
            losses = []
            for k, held in enumerate(folds):
                train = torch.cat([f for j, f in enumerate(folds) if j != k])
                W, b = self.fit_weights(x[train], labels[train], value, value)
                losses.append(F.cross_entropy(x[held] @ W.T + b, labels[held], reduction="sum").item())
            loss = sum(losses) / n
            if loss < best_loss:
                best, best_loss = value, loss
        return best

    def fit(self, logits: Tensor, labels: Tensor, views: Tensor | None = None) -> Fitted:
        x = F.log_softmax(logits.detach().double(), dim=1)
        reg_lambda, reg_mu = self.reg_lambda, self.reg_mu
        if self.cv_grid:
            reg_lambda = reg_mu = self._cross_validate(x, labels)
        W, b = self.fit_weights(x, labels, reg_lambda, reg_mu)

        def apply(z: Tensor, _views: Tensor | None = None) -> Tensor:
            return F.log_softmax(z.double(), dim=1) @ W.T + b

        return Fitted(apply, {"W": W, "b": b}, {"dir_reg_lambda": reg_lambda, "dir_reg_mu": reg_mu})

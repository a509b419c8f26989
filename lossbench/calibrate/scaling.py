"""Temperature, vector and matrix scaling of the logits (Guo et al. 2017), fitted by NLL."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench.calibrate.affine import fit_affine_softmax
from lossbench.calibrate.base import Calibrator, Fitted, newton, register_calibrator
from lossbench.metrics.temperature import fit_temperature, scale


def _check_reg(name: str, value: float) -> float:
    if not float(value) >= 0:
        raise ValueError(f"calibrator {name} needs a regularisation weight >= 0, got {value}")
    return float(value)


@register_calibrator("temperature")
class TemperatureScaling(Calibrator):
    """softmax(z / T), one T > 0: argmin_T NLL on validation (bounded Brent search over log T).

    Guo et al. 2017, "On Calibration of Modern Neural Networks", ICML.
    """

    key = "ts"
    title = "temperature scaling"
    paper = "Guo et al. 2017"

    def num_params(self, num_classes: int) -> int:
        return 1

    def min_samples(self, num_classes: int) -> int:
        return 0  # an empty validation split keeps T = 1

    def fit(self, logits: Tensor, labels: Tensor, views: Tensor | None = None) -> Fitted:
        t = fit_temperature(logits, labels)
        return Fitted(lambda z, _views=None: scale(z, t), {"temperature": torch.tensor([t])},
                      {"temperature": t})


@register_calibrator("vector")
class VectorScaling(Calibrator):
    """softmax(w * z + b), w and b in R^C: argmin NLL on validation (Newton, float64, from w = 1, b = 0).

    ``tie_weights`` fits one scalar w for every class and ``bias: false`` drops b;
    with both, vector scaling is temperature scaling (w = 1/T). Guo et al. 2017,
    "On Calibration of Modern Neural Networks", ICML.
    """

    key = "vs"
    title = "vector scaling"
    paper = "Guo et al. 2017"

    def __init__(self, bias: bool = True, tie_weights: bool = False) -> None:
        self.bias = bool(bias)
        self.tie_weights = bool(tie_weights)

    def num_params(self, num_classes: int) -> int:
        return (1 if self.tie_weights else num_classes) + (num_classes if self.bias else 0)

    def min_samples(self, num_classes: int) -> int:
        return self.num_params(num_classes)

    def fit(self, logits: Tensor, labels: Tensor, views: Tensor | None = None) -> Fitted:
        z = logits.detach().double()
        c = z.shape[1]
        k = 1 if self.tie_weights else c

        def split(theta: Tensor) -> tuple[Tensor, Tensor]:
            return theta[:k], (theta[k:] if self.bias else torch.zeros(c, dtype=z.dtype, device=z.device))

        def objective(theta: Tensor) -> Tensor:
            w, b = split(theta)
            return F.cross_entropy(z * w + b, labels)

        theta0 = torch.cat((torch.ones(k, dtype=z.dtype, device=z.device),
                            torch.zeros(c if self.bias else 0, dtype=z.dtype, device=z.device)))
        w, b = split(newton(theta0, objective))
        params = {"w": w, **({"b": b} if self.bias else {})}
        return Fitted(lambda x, _views=None: x.double() * w + b, params)


@register_calibrator("matrix")
class MatrixScaling(Calibrator):
    """softmax(W z + b), W in R^{CxC}, b in R^C: argmin NLL on validation (lossbench.calibrate.affine:
    Newton up to 36 classes, else L-BFGS; float64, from W = I).

    Guo et al. 2017, "On Calibration of Modern Neural Networks", ICML (no
    regularisation: the default). ``reg_lambda`` and ``reg_mu`` add Kull et al.
    2019's off-diagonal and intercept penalty, reg_lambda / (C(C-1)) sum_{i!=j}
    W_ij^2 + reg_mu / C sum_j b_j^2. Unregularised, it needs at least C(C+1)
    validation samples and is refused before training with fewer.
    """

    key = "ms"
    title = "matrix scaling"
    paper = "Guo et al. 2017"

    def __init__(self, reg_lambda: float = 0.0, reg_mu: float = 0.0) -> None:
        self.reg_lambda = _check_reg("matrix", reg_lambda)
        self.reg_mu = _check_reg("matrix", reg_mu)

    def num_params(self, num_classes: int) -> int:
        return num_classes * (num_classes + 1)

    def min_samples(self, num_classes: int) -> int:
        return self.num_params(num_classes) if self.reg_lambda == 0 and self.reg_mu == 0 else 1

    def fit(self, logits: Tensor, labels: Tensor, views: Tensor | None = None) -> Fitted:
        c = logits.shape[1]
        lam = self.reg_lambda / (c * (c - 1)) if c > 1 else 0.0
        W, b = fit_affine_softmax(logits.detach().double(), labels, lam, self.reg_mu / c)
        return Fitted(lambda x, _views=None: x.double() @ W.T + b, {"W": W, "b": b})

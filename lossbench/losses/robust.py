"""Losses robust to label noise: GCE, MAE and their relatives."""

from __future__ import annotations

from torch import Tensor

from lossbench.losses.base import Loss, register_loss


def _p_true(logits: Tensor, target: Tensor) -> Tensor:
    return logits.softmax(dim=1).gather(1, target[:, None]).squeeze(1)


@register_loss("gce")
class GeneralizedCrossEntropy(Loss):
    """Generalized cross-entropy (Lq): (1 - p_y^q) / q, q in (0, 1].

    Zhang and Sabuncu 2018, "Generalized Cross Entropy Loss for Training Deep
    Neural Networks with Noisy Labels", NeurIPS.
    """

    family = "robust"
    paper = "Zhang and Sabuncu 2018"

    def __init__(self, q: float = 0.7) -> None:
        super().__init__()
        if not 0.0 < q <= 1.0:
            raise ValueError(f"gce needs q in (0, 1], got {q}")
        self.q = q

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        p = _p_true(logits, target).clamp_min(1e-7)
        return (1.0 - p.pow(self.q)) / self.q


@register_loss("mae")
class MeanAbsoluteError(Loss):
    """Mean absolute error on probabilities: ||onehot(y) - p||_1 = 2 (1 - p_y).

    Ghosh, Kumar, Sastry 2017, "Robust Loss Functions under Label Noise for Deep
    Neural Networks", AAAI. ``scale`` = 2 is the paper's L1 distance; the APL
    code of Ma et al. 2020 uses scale = 1.
    """

    family = "robust"
    paper = "Ghosh, Kumar, Sastry 2017"

    def __init__(self, scale: float = 2.0) -> None:
        super().__init__()
        self.scale = scale

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.scale * (1.0 - _p_true(logits, target))

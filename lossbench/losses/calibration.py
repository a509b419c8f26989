"""Calibration-oriented losses: focal and its relatives."""

from __future__ import annotations

from torch import Tensor

from lossbench.losses.base import Loss, register_loss


@register_loss("focal")
class FocalLoss(Loss):
    """Focal loss: -(1 - p_y)^gamma log p_y.

    Lin et al. 2017, "Focal Loss for Dense Object Detection", ICCV; used for
    calibration by Mukhoti et al. 2020. The focal weight stays in the gradient.
    """

    family = "calibration"
    paper = "Lin et al. 2017"

    def __init__(self, gamma: float = 3.0) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"focal needs gamma >= 0, got {gamma}")
        self.gamma = gamma

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        logp = logits.log_softmax(dim=1).gather(1, target[:, None]).squeeze(1)
        return -(1.0 - logp.exp()).pow(self.gamma) * logp

"""Comp-sum losses (Mao, Mohri, Zhong 2023): cross-entropy and its family."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lossbench.losses.base import Loss, register_loss


@register_loss("ce")
class CrossEntropy(Loss):
    """Cross-entropy: -log softmax(z)_y.

    Comp-sum member tau = 1 (Mao, Mohri, Zhong 2023, "Cross-Entropy Loss
    Functions: Theoretical Analysis and Applications", ICML).
    """

    family = "comp-sum"
    paper = "Mao, Mohri, Zhong 2023 (tau=1)"

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(logits, target, reduction="none")

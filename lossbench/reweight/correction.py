"""Loss corrections with a noise transition matrix: forward and backward (Patrini et al. 2017)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from lossbench.losses.base import Loss
from lossbench.reweight.base import register_reweight
from lossbench.reweight.transition import TransitionReweighter

# Above this condition number T is treated as singular: float32 arithmetic would
# keep fewer than one significant digit of T^-1 l.
MAX_CONDITION = 1e6


def loss_name(loss: Loss) -> str:
    return getattr(loss, "registry_name", type(loss).__name__)


@register_reweight("forward")
class ForwardCorrection(TransitionReweighter):
    """Forward correction: the loss is applied to the predicted noisy-label distribution.

    q(x) = T^T softmax(z(x)), i.e. q_j = sum_i T[i, j] p_i, with T[i, j] =
    P(noisy = j | clean = i); the loss gets log q as its logits, and since
    softmax(log q) = q, a loss that depends on z only through softmax(z) sees
    exactly q. For CE this is -log (T^T p)_y~, the forward-corrected loss; for
    any other probabilistic loss l it is l evaluated at the model's prediction
    of the noisy label, which keeps the meaning "fit the noisy labels through
    the noise channel", so softmax(z) estimates the clean posterior. A loss
    that is not probabilistic (uses the logits' scale, e.g. a margin or
    logit-norm loss) is refused: there is no log q to give it a meaning.

    Patrini, Rozza, Menon, Nock, Qu 2017, "Making Deep Neural Networks Robust
    to Label Noise: a Loss Correction Approach", CVPR.
    """

    paper = "Patrini et al. 2017"

    def check_loss(self, loss: Loss) -> None:
        if not getattr(loss, "probabilistic", True):
            raise ValueError(
                f"reweight=forward applies the loss to the noise-corrected distribution T^T softmax(z) "
                f"and needs a loss that depends on the logits only through softmax; loss "
                f"'{loss_name(loss)}' does not (probabilistic=False); use reweight=backward, importance "
                f"or rent, which work with any loss"
            )

    def per_sample_loss(
        self, loss: Loss, logits: Tensor, target: Tensor, features: Tensor | None = None,
        index: Tensor | None = None,
    ) -> Tensor:
        if self.T is None:
            raise RuntimeError("forward: setup() was not called")
        return loss(forward_logits(logits, self.T), target, features, index)


def forward_logits(logits: Tensor, T: Tensor) -> Tensor:
    """log(T^T softmax(z)) row by row, in float32 (outside autocast)."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        q = logits.float().softmax(1) @ T.float()
        return q.clamp_min(torch.finfo(torch.float32).tiny).log()


@register_reweight("backward")
class BackwardCorrection(TransitionReweighter):
    """Backward correction: l_corr(z, y~) = sum_j (T^-1)[y~, j] l(z, j).

    The loss is evaluated at every class label j and the vector
    [l(z, 1) ... l(z, C)] is multiplied by T^-1; the row of the noisy label is
    kept. Its expectation over the noisy label equals the clean loss,
    E_{y~|y}[l_corr(z, y~)] = l(z, y), for any loss, so every loss of the
    catalogue combines with it (the loss is called on a batch C times larger).
    T^-1 has negative entries, so corrected losses can be negative, and for an
    unbounded loss such as CE they are unbounded below: a model lowers them by
    driving some l(z, j) up, and training collapses. ``loss_cap`` bounds each
    l(z, j) from above (min(l, cap), no gradient beyond). Its default
    -ln(1e-7) = 16.118 is what the authors' code does for CE, where the
    predicted probabilities are clipped to [1e-7, 1 - 1e-7] (Keras' epsilon)
    before the log; ``loss_cap: null`` gives the unbounded formula. A singular
    or near-singular T (condition number above 1e6) is refused.

    Patrini, Rozza, Menon, Nock, Qu 2017, "Making Deep Neural Networks Robust
    to Label Noise: a Loss Correction Approach", CVPR.
    """

    paper = "Patrini et al. 2017"

    def __init__(
        self,
        transition: bool | str = "true",
        warmup_epochs: int = 10,
        anchor_quantile: float = 0.97,
        loss_cap: float | None = -math.log(1e-7),
    ) -> None:
        super().__init__(transition, warmup_epochs, anchor_quantile)
        if loss_cap is not None and not float(loss_cap) > 0:
            raise ValueError(f"reweight.loss_cap must be positive or null, got {loss_cap}")
        self.loss_cap = None if loss_cap is None else float(loss_cap)
        self.T_inv: Tensor | None = None

    def prepare(self, T: Tensor, device: torch.device) -> None:
        T64 = T.numpy()
        cond = np.linalg.cond(T64)
        if not np.isfinite(cond) or cond > MAX_CONDITION:
            raise ValueError(
                f"reweight=backward needs an invertible transition matrix, but the {self.source} T is "
                f"singular (condition number {cond:.3g} > {MAX_CONDITION:.0e}); use reweight=forward, "
                f"which needs no inverse"
            )
        self.T_inv = torch.as_tensor(np.linalg.inv(T64)).to(device=device, dtype=torch.float32)

    def per_sample_loss(
        self, loss: Loss, logits: Tensor, target: Tensor, features: Tensor | None = None,
        index: Tensor | None = None,
    ) -> Tensor:
        if self.T_inv is None:
            raise RuntimeError("backward: setup() was not called")
        return backward_corrected(loss, logits, target, self.T_inv, features, self.loss_cap, index)


def backward_corrected(
    loss: Loss,
    logits: Tensor,
    target: Tensor,
    T_inv: Tensor,
    features: Tensor | None = None,
    loss_cap: float | None = None,
    index: Tensor | None = None,
) -> Tensor:
    """sum_j T_inv[y~, j] min(l(z, j), loss_cap) per sample: the loss at every label, mixed by T^-1."""
    b, c = logits.shape
    every_logits = logits.unsqueeze(1).expand(b, c, c).reshape(b * c, c)
    every_label = torch.arange(c, device=logits.device).repeat(b)
    every_feature = None if features is None else features.repeat_interleave(c, dim=0)
    every_index = None if index is None else index.repeat_interleave(c)
    every_loss = loss(every_logits, every_label, every_feature, every_index).float().view(b, c)
    if loss_cap is not None:
        every_loss = every_loss.clamp_max(loss_cap)
    return (T_inv.float()[target] * every_loss).sum(1)

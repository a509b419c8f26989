"""The losses of Menon et al. 2020 ("Can gradient clipping mitigate label noise?"): partially Huberised
cross-entropy and GCE, the linear (unhinged) loss, and cross-entropy with gradient clipping.

A partially Huberised loss replaces a loss l(p_y) of the true class's probability, below the point
p* where its slope in p_y reaches -tau, by the tangent line there: slope -tau, so no sample's gradient
in p_y exceeds tau in size ("loss clipping"; the paper shows that clipping the mini-batch gradient,
the ``ce_clip`` baseline, does not give robustness while this does).

Reference: Aditya Krishna Menon, Ankit Singh Rawat, Sashank J. Reddi, Sanjiv Kumar 2020, "Can
gradient clipping mitigate label noise?", ICLR. The formulas' constants are those of the paper and of
the [Re] reproduction's code (Mizrahi, Yuksel, Kyzy 2021, ReScience C; dmizr/phuber ``phuber/loss.py``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lossbench.losses.base import Loss, register_loss
from lossbench.losses.comp_sum import CrossEntropy
from lossbench.losses.robust import _logp

PAPER = "Menon et al. 2020"


def _check_tau(name: str, tau: float) -> float:
    if not tau > 1:
        raise ValueError(f"{name} needs tau > 1 (the largest gradient in p_y it allows), got {tau}")
    return float(tau)


@register_loss("phuber_ce")
class PHuberCrossEntropy(Loss):
    """Partially Huberised cross-entropy (PHuber-CE), tau > 1:

        l(p_y) = -tau p_y + log(tau) + 1   if p_y <= 1/tau
               = -log p_y                   otherwise.

    The line is the tangent of -log p at p = 1/tau, so value and slope are continuous there and the
    gradient in p_y is at most tau in size. The default tau = 10 is Menon et al.'s MNIST and CIFAR-10
    choice (the [Re] code's default; tau = 2 for its CIFAR-10 table). Computed from log-softmax (the
    [Re] code takes the log of the softmax: the same function, less exact for saturated logits).

    Menon, Rawat, Reddi, Kumar 2020, "Can gradient clipping mitigate label noise?", ICLR.
    """

    family = "robust"
    paper = PAPER

    def __init__(self, tau: float = 10.0) -> None:
        super().__init__()
        self.tau = _check_tau("phuber_ce", tau)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        _, logp_y = _logp(logits, target)
        p_y = logp_y.exp()
        line = -self.tau * p_y + (math.log(self.tau) + 1.0)
        return torch.where(p_y <= 1.0 / self.tau, line, -logp_y)


@register_loss("phuber_gce")
class PHuberGeneralizedCrossEntropy(Loss):
    """Partially Huberised generalized cross-entropy (PHuber-GCE), tau > 1, q in (0, 1):

        l(p_y) = -tau p_y + tau p* + (1 - p*^q)/q   if p_y <= p* = tau^(1 / (q - 1))
               = (1 - p_y^q)/q                       otherwise.

    p* is where GCE's slope -p^(q - 1) reaches -tau; the line is its tangent there. Defaults tau = 10,
    q = 0.7 (Menon et al.'s and the [Re] code's). The [Re] code's plain GCE adds 1e-9 to p_y; its
    PHuber-GCE does not, and neither does this one.

    Menon, Rawat, Reddi, Kumar 2020, "Can gradient clipping mitigate label noise?", ICLR.
    """

    family = "robust"
    paper = PAPER

    def __init__(self, tau: float = 10.0, q: float = 0.7) -> None:
        super().__init__()
        self.tau = _check_tau("phuber_gce", tau)
        if not 0.0 < q < 1.0:
            raise ValueError(f"phuber_gce needs q in (0, 1), got {q}")
        self.q = float(q)
        self.p_star = self.tau ** (1.0 / (self.q - 1.0))
        self.offset = self.tau * self.p_star + (1.0 - self.p_star ** self.q) / self.q

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        _, logp_y = _logp(logits, target)
        line = -self.tau * logp_y.exp() + self.offset
        gce = -torch.expm1(self.q * logp_y) / self.q
        return torch.where(logp_y <= math.log(self.p_star), line, gce)


@register_loss("linear")
class Linear(Loss):
    """The linear ("unhinged") loss on the softmax probability: 1 - p_y.

    van Rooyen, Menon, Williamson 2015 ("Learning with Symmetric Label Noise: The Importance of Being
    Unhinged", NeurIPS) define it on scores, 1 - y f(x); Menon et al. 2020 and the [Re] code (its
    ``Unhinged``) apply it to p_y, the row "Linear" of their tables. The same function as
    ``mae loss.scale=1`` (the APL code's MAE), under the name those tables use.
    """

    family = "robust"
    paper = "van Rooyen et al. 2015; Menon et al. 2020"

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        _, logp_y = _logp(logits, target)
        return -torch.expm1(logp_y)


@register_loss("ce_clip")
class ClippedCrossEntropy(CrossEntropy):
    """Cross-entropy whose mini-batch gradient is clipped: Menon et al. 2020's "CE + clipping".

    The per-sample value is cross-entropy's; the training step clips the norm of the whole gradient
    (every optimised parameter, as ``torch.nn.utils.clip_grad_norm_``) to ``max_norm`` (the loss
    declares it through ``grad_clip``; with ``trainer.grad_clip`` also set, the smaller bound holds).
    The paper's clipping threshold is not given in any source read here; ``max_norm`` = 0.1 is the
    value the [Re] README's clipping example uses (``hparams.grad_clip_max_norm=0.1``) [README].

    Menon, Rawat, Reddi, Kumar 2020, "Can gradient clipping mitigate label noise?", ICLR.
    """

    family = "comp-sum"
    paper = PAPER

    def __init__(self, max_norm: float = 0.1) -> None:
        super().__init__()
        if not max_norm > 0:
            raise ValueError(f"ce_clip needs max_norm > 0, got {max_norm}")
        self.max_norm = float(max_norm)

    @property
    def grad_clip(self) -> float:
        return self.max_norm

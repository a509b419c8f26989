"""Comp-sum losses (Mao, Mohri, Zhong 2023): cross-entropy and its family.

Every member is Phi_tau(u) with u = sum_{y' != y} exp(h_y' - h_y) = 1/p_y - 1,
so it depends on the logits only through p_y:

    Phi_tau(u) = ((1 + u)^(1 - tau) - 1) / (1 - tau)   (tau != 1)
               = log(1 + u)                           (tau = 1)

that is, with x = -log p_y, Phi_tau = expm1((1 - tau) x) / (1 - tau):
tau = 0 sum-exponential (1/p_y - 1), tau = 1 cross-entropy (-log p_y),
tau in (1, 2) generalized cross-entropy ((1 - p_y^q)/q with q = tau - 1),
tau = 2 mean absolute error (1 - p_y).

Reference: Anqi Mao, Mehryar Mohri, Yutao Zhong 2023, "Cross-Entropy Loss
Functions: Theoretical Analysis and Applications", ICML.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench.losses.base import Loss, register_loss
from lossbench.losses.functional import gather

PAPER = "Mao, Mohri, Zhong 2023"

# For tau < 1 the loss grows like (1/p_y)^(1 - tau). Past (1/p_y)^(1 - tau) = guard
# (default 1e7) it continues along its tangent in x = -log p_y (same value, same
# slope there), so the value and the gradient stay finite for any finite logits.
DEFAULT_GUARD = 1e7


def comp_sum_phi(logp_true: Tensor, tau: float, guard: float | None = DEFAULT_GUARD) -> Tensor:
    """Phi_tau(u) with 1 + u = 1/p_y, from log p_y (see the module docstring).

    For tau < 1 and a ``guard``, linear in x = -log p_y past (1/p_y)^(1 - tau) = guard;
    ``guard=None`` is the exact formula (it overflows to inf once (1/p_y)^(1 - tau)
    exceeds the dtype's range).
    """
    x = -logp_true
    if tau == 1.0:
        return x
    r = 1.0 - tau
    if r < 0 or guard is None:
        return torch.expm1(r * x) / r
    x_cap = x.clamp(max=math.log(guard) / r)
    return torch.expm1(r * x_cap) / r + torch.exp(r * x_cap) * (x - x_cap)


def _check_guard(name: str, guard: float | None) -> None:
    if guard is not None and not guard > 1:
        raise ValueError(f"{name} needs guard > 1 (or null for the exact formula), got {guard}")


@register_loss("ce")
class CrossEntropy(Loss):
    """Cross-entropy: -log softmax(z)_y = log(1 + sum_{y' != y} exp(z_y' - z_y)).

    The comp-sum member tau = 1. Mao, Mohri, Zhong 2023, "Cross-Entropy Loss
    Functions: Theoretical Analysis and Applications", ICML.
    """

    family = "comp-sum"
    paper = f"{PAPER} (tau=1)"

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(logits, target, reduction="none")


@register_loss("comp_sum")
class CompSum(Loss):
    """Comp-sum loss Phi_tau(u), u = sum_{y' != y} exp(h_y' - h_y), for any tau >= 0.

    Phi_tau(u) = ((1 + u)^(1 - tau) - 1)/(1 - tau) for tau != 1, log(1 + u) for
    tau = 1. The default tau = 1 is cross-entropy; sweep ``loss.tau``. For tau < 1
    the value continues linearly in -log p_y once (1/p_y)^(1 - tau) exceeds 1e7
    (a guard against overflow; it never binds in ordinary training).

    For tau < 1 the gradient in -log p_y is p_y^-(1 - tau), unbounded as p_y -> 0,
    so a few badly wrong samples can blow a step up: tau = 0.5 at the default
    digits settings (SGD lr 0.1) diverges at epoch 3, and trains with
    ``trainer.grad_clip=5`` (benchmarks/adversarial.md).

    Mao, Mohri, Zhong 2023, "Cross-Entropy Loss Functions: Theoretical Analysis
    and Applications", ICML.
    """

    family = "comp-sum"
    paper = PAPER

    def __init__(self, tau: float = 1.0, guard: float | None = DEFAULT_GUARD) -> None:
        super().__init__()
        if not tau >= 0:
            raise ValueError(f"comp_sum needs tau >= 0, got {tau}")
        _check_guard(type(self).registry_name, guard)
        self.tau = float(tau)
        self.guard = None if guard is None else float(guard)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        return comp_sum_phi(gather(logits.log_softmax(dim=1), target), self.tau, self.guard)


@register_loss("sum_exp")
class SumExp(CompSum):
    """Sum-exponential loss, the comp-sum member tau = 0: u = sum_{y' != y} exp(h_y' - h_y) = 1/p_y - 1.

    Past 1/p_y = ``guard`` (1e7) it continues linearly in -log p_y (finite
    gradients); ``guard: null`` is the exact 1/p_y - 1.
    Mao, Mohri, Zhong 2023, "Cross-Entropy Loss Functions: Theoretical Analysis
    and Applications", ICML.
    """

    paper = f"{PAPER} (tau=0)"

    def __init__(self, guard: float | None = DEFAULT_GUARD) -> None:
        super().__init__(tau=0.0, guard=guard)


@register_loss("comp_gce")
class CompGCE(CompSum):
    """Comp-sum generalized cross-entropy, tau in (1, 2): (1 - p_y^(tau - 1)) / (tau - 1).

    Identical to ``gce`` with q = tau - 1. Default tau = 1.5, the midpoint of the
    range (gce's own default q = 0.7 is tau = 1.7).
    Mao, Mohri, Zhong 2023, "Cross-Entropy Loss Functions: Theoretical Analysis
    and Applications", ICML.
    """

    paper = f"{PAPER} (1<tau<2)"

    def __init__(self, tau: float = 1.5) -> None:
        if not 1.0 < tau < 2.0:
            raise ValueError(f"comp_gce needs tau in (1, 2) (open interval), got {tau}")
        super().__init__(tau=tau)


@register_loss("comp_mae")
class CompMAE(CompSum):
    """Comp-sum mean absolute error, tau = 2: Phi_2(u) = 1 - 1/(1 + u) = 1 - p_y.

    Equals ``mae`` with scale 1 (``mae`` defaults to the L1 distance 2(1 - p_y)).
    Mao, Mohri, Zhong 2023, "Cross-Entropy Loss Functions: Theoretical Analysis
    and Applications", ICML.
    """

    paper = f"{PAPER} (tau=2)"

    def __init__(self) -> None:
        super().__init__(tau=2.0)

"""Normalized losses, active-passive combinations (APL) and active-negative losses (ANL).

A loss L is normalized as L(z, y) / sum_k L(z, k), which makes any loss
symmetric (sum over labels is 1). APL adds a normalized "active" loss and a
"passive" one (MAE or RCE, already symmetric): alpha * active + beta * passive.
ANL replaces the passive loss by a normalized negative loss.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lossbench.losses.base import Loss, register_loss
from lossbench.losses.functional import gather, log1m_softmax, pow_p
from lossbench.losses.robust import check_rce_constant

APL = "Ma et al. 2020"
ANL = "Ye et al. 2023"


def _check_weights(name: str, alpha: float, beta: float) -> None:
    if not (alpha >= 0 and beta >= 0 and alpha + beta > 0):
        raise ValueError(f"{name} needs alpha >= 0, beta >= 0, not both 0; got {alpha}, {beta}")


def _check_gamma(name: str, gamma: float) -> None:
    if not gamma >= 0:
        raise ValueError(f"{name} needs gamma >= 0, got {gamma}")


def _check_min_prob(name: str, min_prob: float) -> None:
    if not 0.0 < min_prob < 1.0:
        raise ValueError(f"{name} needs min_prob in (0, 1), got {min_prob}")


def nce(logits: Tensor, target: Tensor) -> Tensor:
    """log p_y / sum_k log p_k."""
    logp = logits.log_softmax(dim=1)
    return gather(logp, target) / logp.sum(dim=1)


def focal_terms(logits: Tensor, gamma: float, detach_weight: bool) -> Tensor:
    """-(1 - p_k)^gamma log p_k for every class k, [B, C]."""
    weight = torch.exp(gamma * log1m_softmax(logits))
    if detach_weight:
        weight = weight.detach()
    return -weight * logits.log_softmax(dim=1)


def nfl(logits: Tensor, target: Tensor, gamma: float, detach_weight: bool) -> Tensor:
    """FL(z, y) / sum_k FL(z, k), FL(z, k) = -(1 - p_k)^gamma log p_k."""
    terms = focal_terms(logits, gamma, detach_weight)
    return gather(terms, target) / terms.sum(dim=1)


def one_minus_p(logits: Tensor, target: Tensor) -> Tensor:
    return 1.0 - gather(logits.log_softmax(dim=1), target).exp()


def nnce(logits: Tensor, target: Tensor, min_prob: float) -> Tensor:
    """1 - (A + log p_y) / sum_k (A + log p_k), p clamped to [min_prob, 1], A = -log min_prob."""
    a = -math.log(min_prob)
    shifted = logits.log_softmax(dim=1).clamp_min(-a) + a
    return 1.0 - gather(shifted, target) / shifted.sum(dim=1)


def nnfl(logits: Tensor, target: Tensor, gamma: float, min_prob: float) -> Tensor:
    """1 - (A - FL_y) / sum_k (A - FL_k), p clamped to [min_prob, 1], A = FL at p = min_prob."""
    logp = logits.log_softmax(dim=1).clamp_min(math.log(min_prob))
    a = -((1.0 - min_prob) ** gamma) * math.log(min_prob)
    # (1 - p)^gamma for the clamped p; min_prob < 1, so log(1 - p) stays finite.
    weight = torch.where(logp > math.log(min_prob), torch.exp(gamma * log1m_softmax(logits)),
                         torch.full_like(logp, (1.0 - min_prob) ** gamma))
    shifted = a + weight * logp
    return 1.0 - gather(shifted, target) / shifted.sum(dim=1)


@register_loss("nce")
class NormalizedCrossEntropy(Loss):
    """Normalized cross-entropy: log p_y / sum_k log p_k (in [0, 1]; symmetric, sum over y is 1).

    Xingjun Ma, Hanxun Huang, Yisen Wang, Simone Romano, Sarah Erfani, James
    Bailey 2020, "Normalized Loss Functions for Deep Learning with Noisy
    Labels", ICML.
    """

    family = "robust"
    paper = APL

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        return nce(logits, target)


@register_loss("nfl")
class NormalizedFocal(Loss):
    """Normalized focal loss: FL(z, y) / sum_k FL(z, k), FL(z, k) = -(1 - p_k)^gamma log p_k.

    gamma = 0.5 as in the paper. ``detach_weight`` stops the gradient through the
    focal weights (1 - p_k)^gamma, as the APL code does (its published numbers);
    the default follows the formula and keeps them in the gradient.

    Xingjun Ma, Hanxun Huang, Yisen Wang, Simone Romano, Sarah Erfani, James
    Bailey 2020, "Normalized Loss Functions for Deep Learning with Noisy
    Labels", ICML.
    """

    family = "robust"
    paper = APL

    def __init__(self, gamma: float = 0.5, detach_weight: bool = False) -> None:
        super().__init__()
        _check_gamma("nfl", gamma)
        self.gamma, self.detach_weight = float(gamma), bool(detach_weight)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        return nfl(logits, target, self.gamma, self.detach_weight)


@register_loss("ngce")
class NormalizedGCE(Loss):
    """Normalized generalized cross-entropy: (1 - p_y^q) / (C - sum_k p_k^q), q = 0.7.

    Xingjun Ma, Hanxun Huang, Yisen Wang, Simone Romano, Sarah Erfani, James
    Bailey 2020, "Normalized Loss Functions for Deep Learning with Noisy
    Labels", ICML.
    """

    family = "robust"
    paper = APL

    def __init__(self, q: float = 0.7) -> None:
        super().__init__()
        if not 0.0 < q <= 1.0:
            raise ValueError(f"ngce needs q in (0, 1], got {q}")
        self.q = float(q)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        logp = logits.log_softmax(dim=1)
        num = -torch.expm1(self.q * gather(logp, target))
        return num / (logits.shape[1] - pow_p(logp, self.q).sum(dim=1))


@register_loss("nmae")
class NormalizedMAE(Loss):
    """Normalized MAE: MAE(z, y) / sum_k MAE(z, k) = (1 - p_y) / (C - 1), times ``scale``.

    The normalization removes MAE's constant (1 or 2), so the paper's NMAE is
    (1 - p_y)/(C - 1) (scale 1, the default). The APL code is reported (NOTES.md)
    to divide by 2(C - 1): scale 0.5.

    Xingjun Ma, Hanxun Huang, Yisen Wang, Simone Romano, Sarah Erfani, James
    Bailey 2020, "Normalized Loss Functions for Deep Learning with Noisy
    Labels", ICML.
    """

    family = "robust"
    paper = APL

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"nmae needs scale > 0, got {scale}")
        self.scale = float(scale)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.scale * one_minus_p(logits, target) / (logits.shape[1] - 1)


@register_loss("nce_rce")
class NCEandRCE(Loss):
    """APL: alpha * NCE + beta * RCE, RCE = -A (1 - p_y). alpha = beta = 1 (CIFAR-10).

    A = -4 is the SCE paper's constant; the APL code uses A = log(1e-4) ~ -9.21
    (its published numbers carry that factor).

    Xingjun Ma, Hanxun Huang, Yisen Wang, Simone Romano, Sarah Erfani, James
    Bailey 2020, "Normalized Loss Functions for Deep Learning with Noisy
    Labels", ICML.
    """

    family = "robust"
    paper = APL

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, A: float = -4.0) -> None:
        super().__init__()
        _check_weights("nce_rce", alpha, beta)
        check_rce_constant("nce_rce", A)
        self.alpha, self.beta, self.A = float(alpha), float(beta), float(A)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.alpha * nce(logits, target) - self.beta * self.A * one_minus_p(logits, target)


@register_loss("nce_mae")
class NCEandMAE(Loss):
    """APL: alpha * NCE + beta * MAE, MAE = mae_scale (1 - p_y). alpha = beta = 1 (CIFAR-10).

    mae_scale = 2 is the paper's L1 definition of MAE; the APL code uses 1.

    Xingjun Ma, Hanxun Huang, Yisen Wang, Simone Romano, Sarah Erfani, James
    Bailey 2020, "Normalized Loss Functions for Deep Learning with Noisy
    Labels", ICML.
    """

    family = "robust"
    paper = APL

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, mae_scale: float = 2.0) -> None:
        super().__init__()
        _check_weights("nce_mae", alpha, beta)
        if not mae_scale > 0:
            raise ValueError(f"nce_mae needs mae_scale > 0, got {mae_scale}")
        self.alpha, self.beta, self.mae_scale = float(alpha), float(beta), float(mae_scale)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.alpha * nce(logits, target) + self.beta * self.mae_scale * one_minus_p(logits, target)


@register_loss("nfl_rce")
class NFLandRCE(Loss):
    """APL: alpha * NFL + beta * RCE, RCE = -A (1 - p_y); gamma = 0.5, alpha = beta = 1.

    See ``nfl`` for ``detach_weight`` and ``nce_rce`` for A.

    Xingjun Ma, Hanxun Huang, Yisen Wang, Simone Romano, Sarah Erfani, James
    Bailey 2020, "Normalized Loss Functions for Deep Learning with Noisy
    Labels", ICML.
    """

    family = "robust"
    paper = APL

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, gamma: float = 0.5, A: float = -4.0,
                 detach_weight: bool = False) -> None:
        super().__init__()
        _check_weights("nfl_rce", alpha, beta)
        _check_gamma("nfl_rce", gamma)
        check_rce_constant("nfl_rce", A)
        self.alpha, self.beta, self.gamma, self.A = float(alpha), float(beta), float(gamma), float(A)
        self.detach_weight = bool(detach_weight)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        active = nfl(logits, target, self.gamma, self.detach_weight)
        return self.alpha * active - self.beta * self.A * one_minus_p(logits, target)


@register_loss("nfl_mae")
class NFLandMAE(Loss):
    """APL: alpha * NFL + beta * MAE, MAE = mae_scale (1 - p_y); gamma = 0.5, alpha = beta = 1.

    See ``nfl`` for ``detach_weight`` and ``nce_mae`` for mae_scale.

    Xingjun Ma, Hanxun Huang, Yisen Wang, Simone Romano, Sarah Erfani, James
    Bailey 2020, "Normalized Loss Functions for Deep Learning with Noisy
    Labels", ICML.
    """

    family = "robust"
    paper = APL

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, gamma: float = 0.5, mae_scale: float = 2.0,
                 detach_weight: bool = False) -> None:
        super().__init__()
        _check_weights("nfl_mae", alpha, beta)
        _check_gamma("nfl_mae", gamma)
        if not mae_scale > 0:
            raise ValueError(f"nfl_mae needs mae_scale > 0, got {mae_scale}")
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)
        self.mae_scale, self.detach_weight = float(mae_scale), bool(detach_weight)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        active = nfl(logits, target, self.gamma, self.detach_weight)
        return self.alpha * active + self.beta * self.mae_scale * one_minus_p(logits, target)


@register_loss("anl_ce")
class ANLCE(Loss):
    """Active negative loss ANL-CE: alpha * NCE + beta * NNCE.

    NNCE(z, y) = 1 - (A + log p_y) / sum_k (A + log p_k), with p clamped to
    [min_prob, 1] and A = -log min_prob (so every term is >= 0); symmetric.
    Defaults alpha = beta = 5, min_prob = 1e-7 (CIFAR-10). The paper also
    replaces weight decay by an L1 penalty on the weights (delta); that is an
    optimizer setting, not part of this loss.

    Xichen Ye, Xiaoqiang Li, Songmin Dai, Tong Liu, Yan Sun, Weiqin Tong 2023,
    "Active Negative Loss Functions for Learning with Noisy Labels", NeurIPS.
    """

    family = "robust"
    paper = ANL

    def __init__(self, alpha: float = 5.0, beta: float = 5.0, min_prob: float = 1e-7) -> None:
        super().__init__()
        _check_weights("anl_ce", alpha, beta)
        _check_min_prob("anl_ce", min_prob)
        self.alpha, self.beta, self.min_prob = float(alpha), float(beta), float(min_prob)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.alpha * nce(logits, target) + self.beta * nnce(logits, target, self.min_prob)


@register_loss("anl_fl")
class ANLFL(Loss):
    """Active negative loss ANL-FL: alpha * NFL + beta * NNFL.

    NNFL(z, y) = 1 - (A - FL_y) / sum_k (A - FL_k), FL_k = -(1 - p_k)^gamma log p_k
    with p clamped to [min_prob, 1] and A = FL at p = min_prob. Defaults
    alpha = beta = 5, gamma = 0.5, min_prob = 1e-7. Focal weights keep their
    gradient (see ``nfl``).

    Xichen Ye, Xiaoqiang Li, Songmin Dai, Tong Liu, Yan Sun, Weiqin Tong 2023,
    "Active Negative Loss Functions for Learning with Noisy Labels", NeurIPS.
    """

    family = "robust"
    paper = ANL

    def __init__(self, alpha: float = 5.0, beta: float = 5.0, gamma: float = 0.5,
                 min_prob: float = 1e-7) -> None:
        super().__init__()
        _check_weights("anl_fl", alpha, beta)
        _check_gamma("anl_fl", gamma)
        _check_min_prob("anl_fl", min_prob)
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)
        self.min_prob = float(min_prob)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        active = nfl(logits, target, self.gamma, False)
        return self.alpha * active + self.beta * nnfl(logits, target, self.gamma, self.min_prob)

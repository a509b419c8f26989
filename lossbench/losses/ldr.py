"""Label distributionally robust (LDR) losses with a KL regularizer: fixed lambda, and adaptive per sample.

With scores s (see ``ldr_scores``), margins delta on the wrong classes and
l_k = s_k - s_y + delta [k != y] (so l_y = 0):

    LDR-KL_lambda(z, y) = max_{q in simplex} sum_k q_k l_k - lambda KL(q || uniform)
                        = lambda log( (1/C) sum_k exp(l_k / lambda) ).

lambda -> 0 gives the top-1 margin loss max_k l_k, lambda -> inf the mean of
l_k; with raw scores, delta = 0 and lambda = 1 it is CE - log C.

Reference: Dixian Zhu, Yiming Ying, Tianbao Yang 2023, "Label Distributionally
Robust Losses for Multi-class Classification: Consistency, Robustness and
Adaptivity", ICML. Official code: Optimization-AI/ICML2023_LDR (``loss.py``:
``LDRLoss_V1``, ``ALDRLoss_V1``; ``experiment.py``: Lambda 10, alpha 2, margin 0.1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench.losses.base import Loss, register_loss
from lossbench.losses.functional import gather, target_mask

PAPER = "Zhu, Ying, Yang 2023"
SCORE_TRANSFORMS = ("softplus_mean", "abs_mean", "none")


def log_softplus(z: Tensor) -> Tensor:
    """log softplus(z) = log log(1 + e^z), finite for every finite z: below -30 it is z (to within
    e^z / 2 < 5e-14, where softplus(z) = e^z (1 - e^z / 2 + ...)), so it never takes log 0."""
    low = z <= -30.0
    return torch.where(low, z, F.softplus(z.masked_fill(low, 0.0)).log())


def ldr_scores(logits: Tensor, transform: str) -> Tensor:
    """The scores the LDR losses compare.

    ``softplus_mean``: softplus(z) / mean_k softplus(z_k) (LDR-KL's code, and
    ALDR-KL's on CIFAR-100), computed as C softmax_k(log softplus(z_k)): the
    same ratio, with no guard on the mean, so it equals the code's wherever the
    code's is finite (also when every logit is far below 0, where softplus is
    about e^z and the mean is tiny), and stays finite where the code's softplus
    underflows to 0 / 0 (every logit below about -104 in float32).
    ``abs_mean``: z / mean_k |z_k| (ALDR-KL's code elsewhere), unguarded too;
    a row of zeros, 0 / 0 in the code, gets scores 0. ``none``: the raw logits.
    The normalizer keeps its gradient, as in the official code.
    """
    if transform == "none":
        return logits
    if transform == "abs_mean":
        scale = logits.abs().mean(dim=1, keepdim=True)
        return logits / torch.where(scale > 0, scale, torch.ones_like(scale))
    return logits.shape[1] * log_softplus(logits).softmax(dim=1)


def score_margins(scores: Tensor, target: Tensor, margin: float) -> Tensor:
    """l_k = s_k - s_y + margin [k != y], [B, C], from the scores s."""
    wrong = ~target_mask(scores, target)
    return scores - gather(scores, target)[:, None] + margin * wrong.to(scores.dtype)


def ldr_margins(logits: Tensor, target: Tensor, margin: float, transform: str) -> Tensor:
    """l_k = s_k - s_y + margin [k != y], [B, C], with s = ldr_scores(logits, transform)."""
    return score_margins(ldr_scores(logits, transform), target, margin)


def ldr_kl_value(margins: Tensor, lam: Tensor | float) -> Tensor:
    """lambda (logsumexp(l / lambda) - log C), lambda a float or a [B] tensor."""
    if isinstance(lam, Tensor):
        lam = lam[:, None]
    return (lam * ((margins / lam).logsumexp(dim=1, keepdim=True) - math.log(margins.shape[1]))).squeeze(1)


def _check_common(name: str, margin: float, score_transform: str) -> None:
    if not margin >= 0:
        raise ValueError(f"{name} needs margin >= 0, got {margin}")
    if score_transform not in SCORE_TRANSFORMS:
        raise ValueError(
            f"unknown {name} score_transform '{score_transform}'; known: {', '.join(SCORE_TRANSFORMS)}"
        )


@register_loss("ldr_kl")
class LDRKL(Loss):
    """LDR-KL: lambda log( (1/C) sum_k exp((s_k - s_y + delta [k != y]) / lambda) ).

    Defaults lam = 10 and margin delta = 0.1, as the authors run it
    (ICML2023_LDR experiment.py), and score_transform = softplus_mean, the
    official code's scores: softplus(z) divided by their mean over the classes,
    which bounds them in [0, C] and hence bounds the loss (its robustness
    results need bounded scores). score_transform = none applies the formula
    to the raw logits (then the loss depends on z only through softmax(z)).

    Dixian Zhu, Yiming Ying, Tianbao Yang 2023, "Label Distributionally Robust
    Losses for Multi-class Classification: Consistency, Robustness and
    Adaptivity", ICML.
    """

    family = "robust"
    paper = PAPER
    probabilistic = False

    def __init__(self, lam: float = 10.0, margin: float = 0.1,
                 score_transform: str = "softplus_mean") -> None:
        super().__init__()
        if not lam > 0:
            raise ValueError(f"ldr_kl needs lam > 0, got {lam}")
        _check_common("ldr_kl", margin, score_transform)
        self.lam, self.margin, self.score_transform = float(lam), float(margin), score_transform
        self.probabilistic = score_transform == "none"

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        return ldr_kl_value(ldr_margins(logits, target, self.margin, self.score_transform), self.lam)


def aldr_lambda(scores: Tensor, lam_old: Tensor, lam0: float, alpha: float, q_floor: float) -> Tensor:
    """One fixed-point step of ALDR-KL's per-sample lambda (the official code's update).

        q = softmax(s / lambda_old), floored: (q + q_floor) / (1 + C q_floor)
        lambda_new = lam0 (1 - KL(q || uniform) / (alpha log C))

    The maximizer over lambda of -lambda KL(q || u) - (alpha log C / (2 lam0)) (lambda - lam0)^2
    for this q. q is taken over the scores without the margins. KL <= log C, so
    lambda_new lies in [lam0 (1 - 1/alpha), lam0].
    """
    c = scores.shape[1]
    q = (scores / lam_old.to(scores.dtype)[:, None]).softmax(dim=1)
    if q_floor > 0:
        q = (q + q_floor) / (1.0 + c * q_floor)
    kl = (q * (c * q).log()).sum(dim=1)
    return lam0 * (1.0 - kl / (alpha * math.log(c)))


@register_loss("aldr_kl")
class ALDRKL(Loss):
    """Adaptive LDR-KL, the authors' form: a lambda per training sample, maximized and kept between visits.

        ALDR-KL(z, y) = LDR-KL_lambda_i(z, y) - (alpha log C / (2 lam0)) (lambda_i - lam0)^2

    with lambda_i updated at each visit of sample i by one fixed-point step
    (``aldr_lambda``): q = softmax(s / lambda_i) over the scores without the
    margin (floored by ``q_floor`` and renormalized, as the code's 1e-5),
    lambda_i <- lam0 (1 - KL(q || uniform) / (alpha log C)), then the loss is
    taken at the new lambda_i. So lambda_i <= lam0: a sample whose scores are
    concentrated (confident) gets a smaller lambda, a sharper, more max-like
    loss. lambda_i is held fixed in the gradient (no gradient through it or
    the penalty), as in the code. The lambdas live in a buffer of ``num_train``
    values (initialized to lam0) that checkpoints carry; they are stored only
    in training mode (``loss.eval()`` computes the update without storing it,
    so the loss is then a pure function of its inputs and its state).

    Defaults lam0 = 10, alpha = 2, margin 0.1 (the authors' experiments) and
    score_transform = abs_mean (z / mean_k |z_k|), the code's scores except on
    CIFAR-100, where it takes softplus scores (softplus_mean; conf/dataset_loss).
    alpha must exceed 1 (so lambda stays positive). q_floor = 0 takes q without
    the floor.

    Dixian Zhu, Yiming Ying, Tianbao Yang 2023, "Label Distributionally Robust
    Losses for Multi-class Classification: Consistency, Robustness and
    Adaptivity", ICML.
    """

    family = "robust"
    paper = PAPER
    probabilistic = False
    needs_index = True

    def __init__(self, lam0: float = 10.0, alpha: float = 2.0, margin: float = 0.1,
                 score_transform: str = "abs_mean", q_floor: float = 1e-5,
                 num_train: int | None = None) -> None:
        super().__init__()
        if not lam0 > 0:
            raise ValueError(f"aldr_kl needs lam0 > 0, got {lam0}")
        if not alpha > 1:
            raise ValueError(f"aldr_kl needs alpha > 1 (lambda >= lam0 (1 - 1/alpha) > 0), got {alpha}")
        if not 0 <= q_floor < 1:
            raise ValueError(f"aldr_kl needs q_floor in [0, 1), got {q_floor}")
        _check_common("aldr_kl", margin, score_transform)
        if isinstance(num_train, bool) or not isinstance(num_train, int) or num_train < 1:
            raise ValueError(
                f"aldr_kl keeps a lambda per training sample and needs num_train (the training-set size, "
                f"filled in by lossbench.lifecycle.builders.build_loss), got {num_train!r}"
            )
        self.lam0, self.alpha, self.margin = float(lam0), float(alpha), float(margin)
        self.score_transform, self.q_floor = score_transform, float(q_floor)
        self.probabilistic = score_transform == "none"
        self.register_buffer("lam", torch.full((num_train,), self.lam0))

    def compute(self, logits: Tensor, target: Tensor, index: Tensor) -> Tensor:
        scores = ldr_scores(logits, self.score_transform)
        with torch.no_grad():
            lam = aldr_lambda(scores, self.lam[index], self.lam0, self.alpha, self.q_floor)
            if self.training:
                self.lam[index] = lam.to(self.lam.dtype)
        margins = score_margins(scores, target, self.margin)
        penalty = self.alpha * math.log(logits.shape[1]) / (2.0 * self.lam0) * (lam - self.lam0) ** 2
        return ldr_kl_value(margins, lam) - penalty

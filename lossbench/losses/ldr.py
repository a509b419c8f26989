"""Label distributionally robust (LDR) losses with a KL regularizer, fixed and adaptive.

With scores s (see ``score_transform``), margins delta on the wrong classes and
l_k = s_k - s_y + delta [k != y] (so l_y = 0):

    LDR-KL_lambda(z, y) = max_{q in simplex} sum_k q_k l_k - lambda KL(q || uniform)
                        = lambda log( (1/C) sum_k exp(l_k / lambda) ).

lambda -> 0 gives the top-1 margin loss max_k l_k, lambda -> inf the mean of
l_k; with raw scores, delta = 0 and lambda = 1 it is CE - log C.

Reference: Dixian Zhu, Yiming Ying, Tianbao Yang 2023, "Label Distributionally
Robust Losses for Multi-class Classification: Consistency, Robustness and
Adaptivity", ICML.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench.losses.base import Loss, register_loss
from lossbench.losses.functional import gather, target_mask

PAPER = "Zhu, Ying, Yang 2023"
SCORE_TRANSFORMS = ("softplus_mean", "none")
_MAX_SOLVER_STEPS = 200


def ldr_scores(logits: Tensor, transform: str) -> Tensor:
    """The scores the LDR loss compares: raw logits, or softplus(z) / mean_k softplus(z)."""
    if transform == "none":
        return logits
    s = F.softplus(logits)
    return s / s.mean(dim=1, keepdim=True).clamp_min(1e-12)


def ldr_margins(logits: Tensor, target: Tensor, margin: float, transform: str) -> Tensor:
    """l_k = s_k - s_y + margin [k != y], [B, C]."""
    s = ldr_scores(logits, transform)
    wrong = ~target_mask(logits, target)
    return s - gather(s, target)[:, None] + margin * wrong.to(s.dtype)


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

    Defaults lam = 1 (the paper tunes lambda per dataset), margin delta = 0.1 and
    score_transform = softplus_mean, the official code's convention: scores are
    softplus(z) divided by their mean over the classes, which bounds them in
    [0, C] and hence bounds the loss (its robustness results need bounded
    scores). score_transform = none applies the formula to the raw logits
    (then the loss depends on z only through softmax(z)).

    Dixian Zhu, Yiming Ying, Tianbao Yang 2023, "Label Distributionally Robust
    Losses for Multi-class Classification: Consistency, Robustness and
    Adaptivity", ICML.
    """

    family = "robust"
    paper = PAPER
    probabilistic = False

    def __init__(self, lam: float = 1.0, margin: float = 0.1, score_transform: str = "softplus_mean") -> None:
        super().__init__()
        if not lam > 0:
            raise ValueError(f"ldr_kl needs lam > 0, got {lam}")
        _check_common("ldr_kl", margin, score_transform)
        self.lam, self.margin, self.score_transform = float(lam), float(margin), score_transform
        self.probabilistic = score_transform == "none"

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        return ldr_kl_value(ldr_margins(logits, target, self.margin, self.score_transform), self.lam)


def adaptive_lambda(margins: Tensor, lam0: float, alpha: float, max_steps: int = _MAX_SOLVER_STEPS) -> Tensor:
    """Per-sample lambda* solving h(lambda) = lam0 + KL(softmax(l / lambda) || uniform) / alpha - lambda = 0.

    h decreases strictly (dKL/dlambda = -Var_q(l) / lambda^3 <= 0) from h(lam0) >= 0
    to h(lam0 + log(C)/alpha) <= 0, so the root is unique. Safeguarded Newton
    (as "rtsafe"): a bracket [lo, hi] is kept; a Newton step that leaves it, or
    that fails to halve the previous step, is replaced by bisection; it stops
    when every sample has converged. No gradient (see ALDRKL).
    """
    with torch.no_grad():
        tol = 8 * torch.finfo(margins.dtype).eps
        log_c = math.log(margins.shape[1])
        lo = torch.full(margins.shape[:1], lam0, dtype=margins.dtype, device=margins.device)
        hi = lo + log_c / alpha
        lam, step_old = lo.clone(), hi - lo
        for _ in range(max_steps):
            logq = (margins / lam[:, None]).log_softmax(dim=1)
            q = logq.exp()
            kl = (q * logq).sum(dim=1) + log_c
            mean = (q * margins).sum(dim=1)
            var = (q * (margins - mean[:, None]).pow(2)).sum(dim=1)
            h = lam0 + kl / alpha - lam
            slope = -1.0 - var / (alpha * lam.pow(3))
            lo = torch.where(h >= 0, lam, lo)
            hi = torch.where(h <= 0, lam, hi)
            done = (h.abs() <= tol * lam) | (hi - lo <= tol * lam)
            if bool(done.all()):
                break
            newton = lam - h / slope
            bisect = (newton <= lo) | (newton >= hi) | (2 * h.abs() > (step_old * slope).abs())
            new = torch.where(bisect, (lo + hi) / 2, newton)
            step_old = (new - lam).abs()
            lam = torch.where(done, lam, new)
        return lam


@register_loss("aldr_kl")
class ALDRKL(Loss):
    """Adaptive LDR-KL: each sample gets its own lambda, pulled towards lam0.

        ALDR-KL(z, y) = min_{lambda > 0} LDR-KL_lambda(z, y) + (alpha/2) (lambda - lam0)^2
                      = max_q min_lambda  q . l - lambda KL(q || u) + (alpha/2) (lambda - lam0)^2.

    At the saddle point lambda* = lam0 + KL(q* || u)/alpha >= lam0 with
    q* = softmax(l / lambda*): a sample whose worst-case label distribution is
    concentrated (far from uniform) gets a larger lambda, i.e. a flatter, more
    noise-tolerant loss. lambda* is found per sample by safeguarded Newton
    steps (no gradient; about 5 at the defaults); by the envelope theorem the
    gradient of the value with lambda* held fixed is the exact gradient
    (dL/dl = q*). Margins and score transform as ``ldr_kl``.
    Defaults lam0 = 1, alpha = 1 (our choice; the paper tunes them).

    This is our reading of the paper's adaptive loss (a quadratic pull of a
    per-instance lambda towards lam0, solved in closed form for lambda given q);
    check it against the paper before quoting ALDR-KL numbers.

    Dixian Zhu, Yiming Ying, Tianbao Yang 2023, "Label Distributionally Robust
    Losses for Multi-class Classification: Consistency, Robustness and
    Adaptivity", ICML.
    """

    family = "robust"
    paper = PAPER
    probabilistic = False

    def __init__(self, lam0: float = 1.0, alpha: float = 1.0, margin: float = 0.1,
                 score_transform: str = "softplus_mean") -> None:
        super().__init__()
        if not lam0 > 0:
            raise ValueError(f"aldr_kl needs lam0 > 0, got {lam0}")
        if not alpha > 0:
            raise ValueError(f"aldr_kl needs alpha > 0, got {alpha}")
        _check_common("aldr_kl", margin, score_transform)
        self.lam0, self.alpha, self.margin = float(lam0), float(alpha), float(margin)
        self.score_transform = score_transform
        self.probabilistic = score_transform == "none"

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        margins = ldr_margins(logits, target, self.margin, self.score_transform)
        lam = adaptive_lambda(margins, self.lam0, self.alpha)
        return ldr_kl_value(margins, lam) + 0.5 * self.alpha * (lam - self.lam0) ** 2

"""Losses robust to label noise: bounded, symmetric or bootstrapped relatives of cross-entropy.

Notation: z logits, p = softmax(z), y the (possibly noisy) label, C classes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lossbench.losses.base import Loss, register_loss
from lossbench.losses.functional import gather


def _logp(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    logp = logits.log_softmax(dim=1)
    return logp, gather(logp, target)


def check_rce_constant(name: str, A: float) -> None:
    """RCE's A is the value given to log 0: the paper's -4, or log(1e-4) in the official code."""
    if not A < 0:
        raise ValueError(f"{name} needs A < 0 (log 0 := A; paper -4, official code log(1e-4)), got {A}")


@register_loss("gce")
class GeneralizedCrossEntropy(Loss):
    """Generalized cross-entropy (Lq): (1 - p_y^q) / q, q in (0, 1].

    q -> 0 gives cross-entropy, q = 1 gives 1 - p_y. Computed as
    -expm1(q log p_y)/q, exact for small q and finite for saturated logits.

    Zhilu Zhang, Mert R. Sabuncu 2018, "Generalized Cross Entropy Loss for
    Training Deep Neural Networks with Noisy Labels", NeurIPS.
    """

    family = "robust"
    paper = "Zhang and Sabuncu 2018"

    def __init__(self, q: float = 0.7) -> None:
        super().__init__()
        if not 0.0 < q <= 1.0:
            raise ValueError(f"gce needs q in (0, 1], got {q}")
        self.q = float(q)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        _, logp_y = _logp(logits, target)
        return -torch.expm1(self.q * logp_y) / self.q


@register_loss("tgce")
class TruncatedGCE(Loss):
    """Truncated Lq loss: (1 - p_y^q)/q where p_y > k, else the constant (1 - k^q)/q.

    A sample whose label gets probability at most k contributes no gradient.
    The paper reaches this by alternating optimization, re-selecting the
    pruned samples every 10 epochs from epoch 40 of 120; here the truncation is
    applied batch by batch, and during the first ``warmup_fraction`` of training
    (1/3, the paper's 40 of 120 epochs) the loss is plain Lq: with p_y ~ 1/C < k
    at initialization, truncating from the start would stop all learning.
    Outside a trainer (no ``on_epoch_start`` call) the truncated form applies.

    Zhilu Zhang, Mert R. Sabuncu 2018, "Generalized Cross Entropy Loss for
    Training Deep Neural Networks with Noisy Labels", NeurIPS.
    """

    family = "robust"
    paper = "Zhang and Sabuncu 2018"

    def __init__(self, q: float = 0.7, k: float = 0.5, warmup_fraction: float = 1 / 3) -> None:
        super().__init__()
        if not 0.0 < q <= 1.0:
            raise ValueError(f"tgce needs q in (0, 1], got {q}")
        if not 0.0 < k < 1.0:
            raise ValueError(f"tgce needs k in (0, 1), got {k}")
        if not 0.0 <= warmup_fraction <= 1.0:
            raise ValueError(f"tgce needs warmup_fraction in [0, 1], got {warmup_fraction}")
        self.q, self.k, self.warmup_fraction = float(q), float(k), float(warmup_fraction)
        self.truncate = True

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        self.truncate = epoch >= self.warmup_fraction * num_epochs

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        _, logp_y = _logp(logits, target)
        lq = -torch.expm1(self.q * logp_y) / self.q
        if not self.truncate:
            return lq
        floor = (1.0 - self.k**self.q) / self.q
        return torch.where(logp_y > math.log(self.k), lq, torch.full_like(lq, floor))


@register_loss("mae")
class MeanAbsoluteError(Loss):
    """Mean absolute error on probabilities: scale * (1 - p_y).

    ``scale`` = 2 is the paper's L1 distance ||onehot(y) - p||_1 = 2(1 - p_y);
    the APL code of Ma et al. 2020 (and the comp-sum tau = 2 member) use scale 1.
    Symmetric: sum_k MAE(z, k) = scale (C - 1).

    Aritra Ghosh, Himanshu Kumar, P. S. Sastry 2017, "Robust Loss Functions
    under Label Noise for Deep Neural Networks", AAAI.
    """

    family = "robust"
    paper = "Ghosh, Kumar, Sastry 2017"

    def __init__(self, scale: float = 2.0) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"mae needs scale > 0, got {scale}")
        self.scale = float(scale)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        _, logp_y = _logp(logits, target)
        return self.scale * (1.0 - logp_y.exp())


@register_loss("mse")
class MeanSquaredError(Loss):
    """Square loss on probabilities (Brier score): sum_k (p_k - onehot(y)_k)^2.

    Bounded by 2; not symmetric. Discussed as a noise-tolerant alternative by
    Aritra Ghosh, Himanshu Kumar, P. S. Sastry 2017, "Robust Loss Functions
    under Label Noise for Deep Neural Networks", AAAI; the score is Glenn W.
    Brier 1950, "Verification of Forecasts Expressed in Terms of Probability",
    Monthly Weather Review.
    """

    family = "robust"
    paper = "Ghosh, Kumar, Sastry 2017; Brier 1950"

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        p = logits.softmax(dim=1)
        onehot = torch.zeros_like(p).scatter_(1, target[:, None], 1.0)
        return (p - onehot).pow(2).sum(dim=1)


@register_loss("rce")
class ReverseCrossEntropy(Loss):
    """Reverse cross-entropy: -sum_k p_k log q_k with q = onehot(y) and log 0 := A, i.e. -A (1 - p_y).

    The paper takes A = -4 (RCE = 4(1 - p_y), the default); the official code
    clamps the one-hot at 1e-4, i.e. A = log(1e-4) ~ -9.21 (RCE = 9.21(1 - p_y)),
    which is what published SCE / NCE+RCE / NFL+RCE numbers used. Symmetric.

    Yisen Wang, Xingjun Ma, Zaiyi Chen, Yuan Luo, Jinfeng Yi, James Bailey 2019,
    "Symmetric Cross Entropy for Robust Learning with Noisy Labels", ICCV.
    """

    family = "robust"
    paper = "Wang et al. 2019"

    def __init__(self, A: float = -4.0) -> None:
        super().__init__()
        check_rce_constant("rce", A)
        self.A = float(A)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        _, logp_y = _logp(logits, target)
        return -self.A * (1.0 - logp_y.exp())


@register_loss("sce")
class SymmetricCrossEntropy(Loss):
    """Symmetric cross-entropy: alpha * CE + beta * RCE, RCE = -A (1 - p_y).

    Defaults are the paper's CIFAR-10 setting (alpha 0.1, beta 1, A = -4); the
    official code's A is log(1e-4) (see ``rce``).

    Yisen Wang, Xingjun Ma, Zaiyi Chen, Yuan Luo, Jinfeng Yi, James Bailey 2019,
    "Symmetric Cross Entropy for Robust Learning with Noisy Labels", ICCV.
    """

    family = "robust"
    paper = "Wang et al. 2019"

    def __init__(self, alpha: float = 0.1, beta: float = 1.0, A: float = -4.0) -> None:
        super().__init__()
        if not (alpha >= 0 and beta >= 0 and alpha + beta > 0):
            raise ValueError(f"sce needs alpha >= 0, beta >= 0, not both 0; got {alpha}, {beta}")
        check_rce_constant("sce", A)
        self.alpha, self.beta, self.A = float(alpha), float(beta), float(A)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        _, logp_y = _logp(logits, target)
        return -self.alpha * logp_y - self.beta * self.A * (1.0 - logp_y.exp())


@register_loss("bootstrap_soft")
class BootstrapSoft(Loss):
    """Soft bootstrapping: -sum_k (beta onehot(y)_k + (1 - beta) p_k) log p_k.

    = -beta log p_y + (1 - beta) H(p): cross-entropy plus entropy minimization.
    The prediction inside the target keeps its gradient, as in the paper's
    reading of the loss as minimum-entropy regularization. beta = 0.95.

    Scott Reed, Honglak Lee, Dragomir Anguelov, Christian Szegedy, Dumitru Erhan,
    Andrew Rabinovich 2015, "Training Deep Neural Networks on Noisy Labels with
    Bootstrapping", ICLR workshop.
    """

    family = "robust"
    paper = "Reed et al. 2015"

    def __init__(self, beta: float = 0.95) -> None:
        super().__init__()
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"bootstrap_soft needs beta in [0, 1], got {beta}")
        self.beta = float(beta)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        logp, logp_y = _logp(logits, target)
        entropy = -(logp.exp() * logp).sum(dim=1)
        return -self.beta * logp_y + (1.0 - self.beta) * entropy


@register_loss("bootstrap_hard")
class BootstrapHard(Loss):
    """Hard bootstrapping: -beta log p_y - (1 - beta) log p_{argmax_k p_k}. beta = 0.8.

    The arg max is a label choice; no gradient flows through it.

    Scott Reed, Honglak Lee, Dragomir Anguelov, Christian Szegedy, Dumitru Erhan,
    Andrew Rabinovich 2015, "Training Deep Neural Networks on Noisy Labels with
    Bootstrapping", ICLR workshop.
    """

    family = "robust"
    paper = "Reed et al. 2015"

    def __init__(self, beta: float = 0.8) -> None:
        super().__init__()
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"bootstrap_hard needs beta in [0, 1], got {beta}")
        self.beta = float(beta)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        logp, logp_y = _logp(logits, target)
        logp_pred = gather(logp, logits.argmax(dim=1))
        return -self.beta * logp_y - (1.0 - self.beta) * logp_pred


@register_loss("taylor_ce")
class TaylorCrossEntropy(Loss):
    """Taylor cross-entropy: the order-t Taylor series of -log p_y about p_y = 1,
    sum_{i=1}^{t} (1 - p_y)^i / i. t = 1 is MAE (scale 1); t -> inf is CE. Default t = 2.

    Lei Feng, Senlin Shu, Zhuoyi Lin, Fengmao Lv, Li Li, Bo An 2020, "Can Cross
    Entropy Loss Be Robust to Label Noise?", IJCAI.
    """

    family = "robust"
    paper = "Feng et al. 2020"

    def __init__(self, t: int = 2) -> None:
        super().__init__()
        if isinstance(t, bool) or not isinstance(t, int) or t < 1:
            raise ValueError(f"taylor_ce needs an integer order t >= 1, got {t!r}")
        self.t = t

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        _, logp_y = _logp(logits, target)
        r = 1.0 - logp_y.exp()
        return sum(r.pow(i) / i for i in range(1, self.t + 1))


@register_loss("gjs")
class JensenShannon(Loss):
    """Jensen-Shannon loss (GJS with M = 2): JS_pi(e_y, p) / Z, Z = -(1 - pi_1) log(1 - pi_1).

    JS_pi(e_y, p) = pi_1 KL(e_y || m) + (1 - pi_1) KL(p || m), m = pi_1 e_y + (1 - pi_1) p.
    It tends to CE as pi_1 -> 0 and to MAE (scale 1) as pi_1 -> 1. Default
    pi_1 = 0.5. GJS with M > 2 adds predictions on further augmented views of the
    same input, which a per-sample loss on one set of logits cannot see; this is
    the paper's JS loss, its M = 2 case. Closed form used (finite for saturated
    logits): KL(e_y || m) = -log m_y and
    KL(p || m) = p_y (log p_y - log m_y) - (1 - p_y) log(1 - pi_1).

    Erik Englesson, Hossein Azizpour 2021, "Generalized Jensen-Shannon Divergence
    Loss for Learning with Noisy Labels", NeurIPS.
    """

    family = "robust"
    paper = "Englesson and Azizpour 2021"

    def __init__(self, pi_1: float = 0.5) -> None:
        super().__init__()
        if not 0.0 < pi_1 < 1.0:
            raise ValueError(f"gjs needs pi_1 in (0, 1) (open interval), got {pi_1}")
        self.pi_1 = float(pi_1)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        pi1, pi2 = self.pi_1, 1.0 - self.pi_1
        _, logp_y = _logp(logits, target)
        p_y = logp_y.exp()
        log_m_y = torch.log(pi1 + pi2 * p_y)
        kl_label = -log_m_y
        kl_pred = p_y * (logp_y - log_m_y) - (1.0 - p_y) * math.log(pi2)
        return (pi1 * kl_label + pi2 * kl_pred) / (-pi2 * math.log(pi2))


@register_loss("agce")
class AsymmetricGCE(Loss):
    """Asymmetric generalized cross-entropy: ((a + 1)^q - (a + p_y)^q) / q, a > 0, q > 0.

    Defaults a = 6, q = 1.5 (CIFAR-10 setting as we recall it from the paper;
    tune per dataset).

    Xiong Zhou, Xianming Liu, Junjun Jiang, Xin Gao, Xiangyang Ji 2021,
    "Asymmetric Loss Functions for Learning with Noisy Labels", ICML.
    """

    family = "robust"
    paper = "Zhou et al. 2021"

    def __init__(self, a: float = 6.0, q: float = 1.5) -> None:
        super().__init__()
        if not (a > 0 and q > 0):
            raise ValueError(f"agce needs a > 0 and q > 0, got a={a}, q={q}")
        self.a, self.q = float(a), float(q)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        _, logp_y = _logp(logits, target)
        return ((self.a + 1.0) ** self.q - (self.a + logp_y.exp()).pow(self.q)) / self.q


@register_loss("aul")
class AsymmetricUnhinged(Loss):
    """Asymmetric unhinged loss: ((a - p_y)^q - (a - 1)^q) / q, a > 1, q > 0.

    Defaults a = 6.3, q = 1.5 (CIFAR-10 setting as we recall it from the paper;
    tune per dataset).

    Xiong Zhou, Xianming Liu, Junjun Jiang, Xin Gao, Xiangyang Ji 2021,
    "Asymmetric Loss Functions for Learning with Noisy Labels", ICML.
    """

    family = "robust"
    paper = "Zhou et al. 2021"

    def __init__(self, a: float = 6.3, q: float = 1.5) -> None:
        super().__init__()
        if not (a > 1 and q > 0):
            raise ValueError(f"aul needs a > 1 and q > 0, got a={a}, q={q}")
        self.a, self.q = float(a), float(q)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        _, logp_y = _logp(logits, target)
        return ((self.a - logp_y.exp()).pow(self.q) - (self.a - 1.0) ** self.q) / self.q

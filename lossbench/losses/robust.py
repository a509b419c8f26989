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


RCE_CONSTANTS = {"paper": -4.0, "code": math.log(1e-4)}


def rce_constant(name: str, A: float | str) -> float:
    """RCE's A, the value given to log 0: ``paper`` = -4 (Wang et al. 2019), ``code`` = log(1e-4)
    exactly (the official code clamps the one-hot label at 1e-4), or any negative number."""
    if isinstance(A, str):
        if A not in RCE_CONSTANTS:
            raise ValueError(f"unknown {name} A '{A}'; known: paper (-4), code (log 1e-4), or a number < 0")
        return RCE_CONSTANTS[A]
    if isinstance(A, bool) or not float(A) < 0:
        raise ValueError(f"{name} needs A < 0 (log 0 := A), 'paper' (-4) or 'code' (log 1e-4); got {A}")
    return float(A)


@register_loss("gce")
class GeneralizedCrossEntropy(Loss):
    """Generalized cross-entropy (Lq): (1 - p_y^q) / q, q in (0, 1].

    q -> 0 gives cross-entropy, q = 1 gives 1 - p_y. Computed as
    -expm1(q log p_y)/q, exact for small q and finite for saturated logits.
    ``min_prob`` = 0 (the default) is the formula; ``min_prob: 1.0e-7`` clamps
    p_y to [min_prob, 1] first, as the APL and ANL code do (HanxunH/Active-
    Passive-Losses and Virusdoll/Active-Negative-Loss ``loss.py``): below the
    floor the value is (1 - min_prob^q)/q and the gradient 0. ``eps`` > 0 adds
    eps to p_y before the power, (1 - (p_y + eps)^q)/q, as the [Re] code of
    Menon et al. 2020 does with 1e-9 (dmizr/phuber ``phuber/loss.py``); 0 (the
    default) is the formula.

    Zhilu Zhang, Mert R. Sabuncu 2018, "Generalized Cross Entropy Loss for
    Training Deep Neural Networks with Noisy Labels", NeurIPS.
    """

    family = "robust"
    paper = "Zhang and Sabuncu 2018"

    def __init__(self, q: float = 0.7, min_prob: float = 0.0, eps: float = 0.0) -> None:
        super().__init__()
        if not 0.0 < q <= 1.0:
            raise ValueError(f"gce needs q in (0, 1], got {q}")
        if not 0.0 <= min_prob < 1.0:
            raise ValueError(f"gce needs min_prob in [0, 1) (0 = no clamp), got {min_prob}")
        if not 0.0 <= eps < 1.0:
            raise ValueError(f"gce needs eps in [0, 1) (0 = the formula), got {eps}")
        self.q, self.min_prob, self.eps = float(q), float(min_prob), float(eps)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        _, logp_y = _logp(logits, target)
        if self.eps > 0:  # log(p_y + eps)
            logp_y = torch.logaddexp(logp_y, torch.tensor(math.log(self.eps), dtype=logp_y.dtype))
        if self.min_prob > 0:
            logp_y = logp_y.clamp_min(math.log(self.min_prob))
        return -torch.expm1(self.q * logp_y) / self.q


TGCE_SCHEDULES = ("batch", "epoch")


@register_loss("tgce")
class TruncatedGCE(Loss):
    """Truncated Lq loss: (1 - p_y^q)/q for kept samples, the constant (1 - k^q)/q for pruned ones.

    A pruned sample contributes no gradient. The first ``warmup_fraction`` of
    training (1/3: the paper's 40 of 120 epochs) is plain Lq: with p_y ~ 1/C < k
    at initialization, truncating from the start would stop all learning.
    ``schedule`` decides when a sample is pruned (p_y <= k):

    - ``batch`` (default): at every step, from the current batch's p_y.
    - ``epoch``: the paper's alternating schedule. The keep/prune choice is
      stored per training sample and refreshed only in pruning epochs: the
      first epoch after the warm-up, then every ``prune_every`` (10) epochs
      (epochs 40, 50, ..., 110 of 120; lossbench's reading of the paper, not
      re-checked against its text for this option). The paper re-selects on the whole
      training set before such an epoch; here each sample's choice is
      refreshed at its visit in the pruning epoch, from that batch's logits
      (the model moves within the epoch). Between pruning epochs the stored
      choices hold. Needs the batch's training-set indices and ``num_train``
      (a buffer that checkpoints carry; stored in training mode only).

    Outside a trainer (no ``on_epoch_start`` call) the truncated form applies
    (and, with ``epoch``, every call is a pruning visit).

    Zhilu Zhang, Mert R. Sabuncu 2018, "Generalized Cross Entropy Loss for
    Training Deep Neural Networks with Noisy Labels", NeurIPS.
    """

    family = "robust"
    paper = "Zhang and Sabuncu 2018"

    def __init__(self, q: float = 0.7, k: float = 0.5, warmup_fraction: float = 1 / 3,
                 schedule: str = "batch", prune_every: int = 10, num_train: int | None = None) -> None:
        super().__init__()
        if not 0.0 < q <= 1.0:
            raise ValueError(f"tgce needs q in (0, 1], got {q}")
        if not 0.0 < k < 1.0:
            raise ValueError(f"tgce needs k in (0, 1), got {k}")
        if not 0.0 <= warmup_fraction <= 1.0:
            raise ValueError(f"tgce needs warmup_fraction in [0, 1], got {warmup_fraction}")
        if schedule not in TGCE_SCHEDULES:
            raise ValueError(f"unknown tgce schedule '{schedule}'; known: {', '.join(TGCE_SCHEDULES)}")
        if isinstance(prune_every, bool) or not isinstance(prune_every, int) or prune_every < 1:
            raise ValueError(f"tgce needs an integer prune_every >= 1 (epochs), got {prune_every!r}")
        self.q, self.k, self.warmup_fraction = float(q), float(k), float(warmup_fraction)
        self.schedule, self.prune_every = schedule, prune_every
        self.truncate = self.prune_now = True
        self.needs_index = schedule == "epoch"
        if self.needs_index:
            if isinstance(num_train, bool) or not isinstance(num_train, int) or num_train < 1:
                raise ValueError(
                    "tgce with schedule=epoch stores a keep/prune choice per training sample and needs "
                    "num_train (the training-set size, filled in by "
                    f"lossbench.lifecycle.builders.build_loss), got {num_train!r}"
                )
            self.register_buffer("keep", torch.ones(num_train, dtype=torch.bool))

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        self.truncate = epoch >= self.warmup_fraction * num_epochs
        first = math.ceil(self.warmup_fraction * num_epochs - 1e-9)
        self.prune_now = epoch >= first and (epoch - first) % self.prune_every == 0

    def compute(self, logits: Tensor, target: Tensor, index: Tensor | None = None) -> Tensor:
        _, logp_y = _logp(logits, target)
        lq = -torch.expm1(self.q * logp_y) / self.q
        floor = torch.full_like(lq, (1.0 - self.k**self.q) / self.q)
        if self.schedule == "batch":
            return torch.where(logp_y > math.log(self.k), lq, floor) if self.truncate else lq
        if self.prune_now:
            keep = (logp_y > math.log(self.k)).detach()
            if self.training:
                self.keep[index] = keep
        else:
            keep = self.keep[index]
        return torch.where(keep, lq, floor)


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


MSE_REDUCTIONS = {"sum": "sum_k, the Brier score", "mean": "mean_k, torch MSELoss as in the ANL code"}


@register_loss("mse")
class MeanSquaredError(Loss):
    """Square loss on probabilities (Brier score): sum_k (p_k - onehot(y)_k)^2.

    Bounded by 2; not symmetric. ``class_reduction``: ``sum`` (default, the
    Brier score) or ``mean`` = (1/C) sum_k (p_k - onehot(y)_k)^2, the scale of
    the ANL code's MSE (torch ``MSELoss`` averages over batch and classes).
    Discussed as a noise-tolerant alternative by Aritra Ghosh, Himanshu Kumar,
    P. S. Sastry 2017, "Robust Loss Functions under Label Noise for Deep Neural
    Networks", AAAI; the score is Glenn W. Brier 1950, "Verification of
    Forecasts Expressed in Terms of Probability", Monthly Weather Review.
    """

    family = "robust"
    paper = "Ghosh, Kumar, Sastry 2017; Brier 1950"

    def __init__(self, class_reduction: str = "sum") -> None:
        super().__init__()
        if class_reduction not in MSE_REDUCTIONS:
            raise ValueError(
                f"unknown mse class_reduction '{class_reduction}'; known: {', '.join(MSE_REDUCTIONS)}"
            )
        self.class_reduction = class_reduction

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        p = logits.softmax(dim=1)
        onehot = torch.zeros_like(p).scatter_(1, target[:, None], 1.0)
        square = (p - onehot).pow(2)
        return square.sum(dim=1) if self.class_reduction == "sum" else square.mean(dim=1)


@register_loss("rce")
class ReverseCrossEntropy(Loss):
    """Reverse cross-entropy: -sum_k p_k log q_k with q = onehot(y) and log 0 := A, i.e. -A (1 - p_y).

    ``A``: ``paper`` (the default) is the paper's -4, RCE = 4(1 - p_y); ``code``
    is exactly log(1e-4) = -9.2103..., the official code's clamp of the one-hot
    label at 1e-4 (RCE = 9.21(1 - p_y)), which is what published SCE / NCE+RCE /
    NFL+RCE numbers used; any negative number works too. The code also clamps
    p at 1e-7 before the sum over the wrong classes, which moves the value by at
    most 9.21 (C - 1) 1e-7; lossbench uses 1 - p_y exactly. Symmetric.

    Yisen Wang, Xingjun Ma, Zaiyi Chen, Yuan Luo, Jinfeng Yi, James Bailey 2019,
    "Symmetric Cross Entropy for Robust Learning with Noisy Labels", ICCV.
    """

    family = "robust"
    paper = "Wang et al. 2019"

    def __init__(self, A: float | str = "paper") -> None:
        super().__init__()
        self.A = rce_constant("rce", A)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        _, logp_y = _logp(logits, target)
        return -self.A * (1.0 - logp_y.exp())


@register_loss("sce")
class SymmetricCrossEntropy(Loss):
    """Symmetric cross-entropy: alpha * CE + beta * RCE, RCE = -A (1 - p_y).

    Defaults are the paper's CIFAR-10 setting (alpha 0.1, beta 1, A = -4:
    ``A: paper``); ``A: code`` is the official code's log(1e-4) (see ``rce``).

    Yisen Wang, Xingjun Ma, Zaiyi Chen, Yuan Luo, Jinfeng Yi, James Bailey 2019,
    "Symmetric Cross Entropy for Robust Learning with Noisy Labels", ICCV.
    """

    family = "robust"
    paper = "Wang et al. 2019"

    def __init__(self, alpha: float = 0.1, beta: float = 1.0, A: float | str = "paper") -> None:
        super().__init__()
        if not (alpha >= 0 and beta >= 0 and alpha + beta > 0):
            raise ValueError(f"sce needs alpha >= 0, beta >= 0, not both 0; got {alpha}, {beta}")
        self.alpha, self.beta, self.A = float(alpha), float(beta), rce_constant("sce", A)

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

    Defaults a = 0.6, q = 0.6: the authors' standalone CIFAR-10 (and CIFAR-100)
    setting (hitcszx/ALFs config.py); MNIST uses a = 4, q = 0.2
    (conf/dataset_loss). a = 6, q = 1.5 is the passive term of ``nce_agce``.

    Xiong Zhou, Xianming Liu, Junjun Jiang, Xin Gao, Xiangyang Ji 2021,
    "Asymmetric Loss Functions for Learning with Noisy Labels", ICML.
    """

    family = "robust"
    paper = "Zhou et al. 2021"

    def __init__(self, a: float = 0.6, q: float = 0.6) -> None:
        super().__init__()
        check_agce("agce", a, q)
        self.a, self.q = float(a), float(q)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        return agce(logits, target, self.a, self.q)


@register_loss("aul")
class AsymmetricUnhinged(Loss):
    """Asymmetric unhinged loss: ((a - p_y)^q - (a - 1)^q) / q, a > 1, q > 0.

    Defaults a = 5.5, q = 3: the authors' standalone CIFAR-10 (and CIFAR-100)
    setting (hitcszx/ALFs config.py); MNIST uses a = 3, q = 0.1
    (conf/dataset_loss). a = 6.3, q = 1.5 is the passive term of ``nce_aul``.

    Xiong Zhou, Xianming Liu, Junjun Jiang, Xin Gao, Xiangyang Ji 2021,
    "Asymmetric Loss Functions for Learning with Noisy Labels", ICML.
    """

    family = "robust"
    paper = "Zhou et al. 2021"

    def __init__(self, a: float = 5.5, q: float = 3.0) -> None:
        super().__init__()
        check_aul("aul", a, q)
        self.a, self.q = float(a), float(q)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        return aul(logits, target, self.a, self.q)


@register_loss("ael")
class AsymmetricExponential(Loss):
    """Asymmetric exponential loss: exp(-p_y / a), a > 0.

    Default a = 2.5: the authors' CIFAR-10 (and CIFAR-100) setting
    (hitcszx/ALFs config.py); MNIST uses a = 3.5 (conf/dataset_loss).

    Xiong Zhou, Xianming Liu, Junjun Jiang, Xin Gao, Xiangyang Ji 2021,
    "Asymmetric Loss Functions for Learning with Noisy Labels", ICML.
    """

    family = "robust"
    paper = "Zhou et al. 2021"

    def __init__(self, a: float = 2.5) -> None:
        super().__init__()
        check_ael("ael", a)
        self.a = float(a)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        return ael(logits, target, self.a)


def check_agce(name: str, a: float, q: float) -> None:
    if not (a > 0 and q > 0):
        raise ValueError(f"{name} needs a > 0 and q > 0, got a={a}, q={q}")


def check_aul(name: str, a: float, q: float) -> None:
    if not (a > 1 and q > 0):
        raise ValueError(f"{name} needs a > 1 and q > 0, got a={a}, q={q}")


def check_ael(name: str, a: float) -> None:
    if not a > 0:
        raise ValueError(f"{name} needs a > 0, got a={a}")


def agce(logits: Tensor, target: Tensor, a: float, q: float) -> Tensor:
    """((a + 1)^q - (a + p_y)^q) / q."""
    p_y = gather(logits.log_softmax(dim=1), target).exp()
    return ((a + 1.0) ** q - (a + p_y).pow(q)) / q


def aul(logits: Tensor, target: Tensor, a: float, q: float) -> Tensor:
    """((a - p_y)^q - (a - 1)^q) / q."""
    p_y = gather(logits.log_softmax(dim=1), target).exp()
    return ((a - p_y).pow(q) - (a - 1.0) ** q) / q


def ael(logits: Tensor, target: Tensor, a: float) -> Tensor:
    """exp(-p_y / a)."""
    p_y = gather(logits.log_softmax(dim=1), target).exp()
    return torch.exp(-p_y / a)

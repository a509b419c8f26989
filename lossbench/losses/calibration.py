"""Calibration-oriented losses: focal and its relatives, smoothing, square losses, regularized CE.

Notation: z logits, p = softmax(z), y the label, C classes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench.losses.base import Loss, register_loss
from lossbench.losses.functional import gather, log1m_p_true


def focal_value(logits: Tensor, target: Tensor, gamma: Tensor | float, detach_weight: bool) -> Tensor:
    """-(1 - p_y)^gamma log p_y, the weight computed as exp(gamma log(1 - p_y)) (finite at p_y = 1)."""
    logp_y = gather(logits.log_softmax(dim=1), target)
    weight = torch.exp(gamma * log1m_p_true(logits, target))
    if detach_weight:
        weight = weight.detach()
    return -weight * logp_y


@register_loss("focal")
class FocalLoss(Loss):
    """Focal loss: -(1 - p_y)^gamma log p_y; gamma = 0 is cross-entropy.

    Default gamma = 3, the fixed gamma Mukhoti et al. 2020 recommend for
    calibration (Lin et al. use gamma = 2 with a class weight alpha for
    detection). The focal weight stays in the gradient, as in the formula and
    in Mukhoti et al.'s code; ``detach_weight: true`` stops it, as the APL code
    of Ma et al. 2020 does.

    Tsung-Yi Lin, Priya Goyal, Ross Girshick, Kaiming He, Piotr Dollar 2017,
    "Focal Loss for Dense Object Detection", ICCV.
    """

    family = "calibration"
    paper = "Lin et al. 2017"

    def __init__(self, gamma: float = 3.0, detach_weight: bool = False) -> None:
        super().__init__()
        if not gamma >= 0:
            raise ValueError(f"focal needs gamma >= 0, got {gamma}")
        self.gamma, self.detach_weight = float(gamma), bool(detach_weight)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        return focal_value(logits, target, self.gamma, self.detach_weight)


@register_loss("flsd53")
class FocalSampleDependent(Loss):
    """FLSD-53: focal loss with a sample-dependent gamma: 5 where p_y < 0.2, else 3.

    gamma is chosen from the current p_y (a choice, no gradient through it);
    the focal weight keeps its gradient, as in the paper's code.

    Jishnu Mukhoti, Viveka Kulharia, Amartya Sanyal, Stuart Golodetz, Philip H.
    S. Torr, Puneet K. Dokania 2020, "Calibrating Deep Neural Networks using
    Focal Loss", NeurIPS.
    """

    family = "calibration"
    paper = "Mukhoti et al. 2020"

    def __init__(self, gamma_below: float = 5.0, gamma_above: float = 3.0, threshold: float = 0.2) -> None:
        super().__init__()
        if not (gamma_below >= 0 and gamma_above >= 0):
            raise ValueError(f"flsd53 needs gammas >= 0, got {gamma_below}, {gamma_above}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"flsd53 needs threshold in (0, 1), got {threshold}")
        self.gamma_below, self.gamma_above = float(gamma_below), float(gamma_above)
        self.threshold = float(threshold)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            low = gather(logits.log_softmax(dim=1), target) < math.log(self.threshold)
            gamma = torch.where(low, self.gamma_below, self.gamma_above)
        return focal_value(logits, target, gamma, detach_weight=False)


def smoothed_ce(logits: Tensor, target: Tensor, epsilon: float) -> Tensor:
    """Cross-entropy against (1 - epsilon) onehot(y) + epsilon / C."""
    logp = logits.log_softmax(dim=1)
    return -(1.0 - epsilon) * gather(logp, target) - epsilon * logp.mean(dim=1)


@register_loss("label_smoothing")
class LabelSmoothing(Loss):
    """Label smoothing: CE against (1 - epsilon) onehot(y) + epsilon/C,
    = (1 - epsilon)(-log p_y) + epsilon mean_k(-log p_k). epsilon = 0.1.

    Same convention as torch's ``cross_entropy(label_smoothing=epsilon)``.

    Christian Szegedy, Vincent Vanhoucke, Sergey Ioffe, Jon Shlens, Zbigniew
    Wojna 2016, "Rethinking the Inception Architecture for Computer Vision",
    CVPR.
    """

    family = "calibration"
    paper = "Szegedy et al. 2016"

    def __init__(self, epsilon: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"label_smoothing needs epsilon in [0, 1], got {epsilon}")
        self.epsilon = float(epsilon)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        return smoothed_ce(logits, target, self.epsilon)


@register_loss("nls")
class NegativeLabelSmoothing(Loss):
    """Negative label smoothing (generalized label smoothing with rate r < 0), as the official code
    weighs it: wa CE + wb GLS_r, GLS_r = CE against (1 - r) onehot(y) + r/C.

    Defaults r = epsilon = -0.2 (one of the paper's rates), wa = 0, wb = 1 (the
    code's defaults: GLS alone; UCSC-REAL/negative-label-smoothing loss.py).
    Unbounded below (it rewards pushing wrong-class probabilities to 0); the
    paper applies it after a cross-entropy warm-up, which is a training
    protocol, not part of this loss.

    Jiaheng Wei, Hangyu Liu, Tongliang Liu, Gang Niu, Masashi Sugiyama, Yang Liu
    2022, "To Smooth or Not? When Label Smoothing Meets Noisy Labels", ICML.
    """

    family = "robust"
    paper = "Wei et al. 2022 (NLS)"

    def __init__(self, epsilon: float = -0.2, wa: float = 0.0, wb: float = 1.0) -> None:
        super().__init__()
        if not epsilon <= 0.0:
            raise ValueError(f"nls needs epsilon <= 0 (label_smoothing takes positive rates), got {epsilon}")
        if not (wa >= 0 and wb >= 0 and wa + wb > 0):
            raise ValueError(f"nls needs wa >= 0, wb >= 0, not both 0; got {wa}, {wb}")
        self.epsilon, self.wa, self.wb = float(epsilon), float(wa), float(wb)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        gls = smoothed_ce(logits, target, self.epsilon)
        if self.wa == 0.0:
            return self.wb * gls
        return self.wa * F.cross_entropy(logits, target, reduction="none") + self.wb * gls


@register_loss("poly1")
class Poly1(Loss):
    """Poly-1 loss: CE + epsilon (1 - p_y); epsilon = 0 is CE, and the paper keeps epsilon >= -1.

    Default epsilon = 1 (the paper tunes it per task; timm's PolyCrossEntropy
    defaults to 2).

    Zhaoqi Leng, Mingxing Tan, Chenxi Liu, Ekin Dogus Cubuk, Xiaojie Shi, Shuyang
    Cheng, Dragomir Anguelov 2022, "PolyLoss: A Polynomial Expansion Perspective
    of Classification Loss Functions", ICLR.
    """

    family = "calibration"
    paper = "Leng et al. 2022"

    def __init__(self, epsilon: float = 1.0) -> None:
        super().__init__()
        if not epsilon >= -1.0:
            raise ValueError(f"poly1 needs epsilon >= -1, got {epsilon}")
        self.epsilon = float(epsilon)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        logp_y = gather(logits.log_softmax(dim=1), target)
        return -logp_y + self.epsilon * (1.0 - logp_y.exp())


@register_loss("squentropy")
class Squentropy(Loss):
    """Squentropy: CE + (1/(C - 1)) sum_{k != y} z_k^2, the mean square of the raw wrong-class logits.

    Like Hui, Belkin, Wright's code, the square term acts on logits, not probabilities.

    Like Hui, Mikhail Belkin, Stephen Wright 2023, "Cut your Losses with
    Squentropy", ICML.
    """

    family = "calibration"
    paper = "Hui, Belkin, Wright 2023"
    probabilistic = False

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        square = logits.pow(2)
        wrong = (square.sum(dim=1) - gather(square, target)) / (logits.shape[1] - 1)
        return F.cross_entropy(logits, target, reduction="none") + wrong


@register_loss("z_loss")
class ZLoss(Loss):
    """Z-loss (spherical family): softplus(a (b - z_y)) / a on z-normalized logits.

    z = (o - mean(o)) / std(o) per sample with the population std (a 1e-12 is
    added to the variance so constant logits give z = 0). Defaults a = 0.1,
    b = 10, from memory of the paper's setting; verify before quoting numbers.
    Not to be confused with ``z_loss_reg`` (CE + lambda logsumexp(z)^2).

    Alexandre de Brebisson, Pascal Vincent 2016, "An Exploration of Softmax
    Alternatives Belonging to the Spherical Loss Family", ICLR.
    """

    family = "calibration"
    paper = "de Brebisson and Vincent 2016"
    probabilistic = False

    def __init__(self, a: float = 0.1, b: float = 10.0) -> None:
        super().__init__()
        if not a > 0:
            raise ValueError(f"z_loss needs a > 0, got {a}")
        self.a, self.b = float(a), float(b)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        centered = logits - logits.mean(dim=1, keepdim=True)
        z = centered / (centered.pow(2).mean(dim=1, keepdim=True) + 1e-12).sqrt()
        return F.softplus(self.a * (self.b - gather(z, target))) / self.a


@register_loss("z_loss_reg")
class ZLossRegularizedCE(Loss):
    """Cross-entropy plus the "z-loss" regularizer of large language models: CE + lam (logsumexp_k z_k)^2.

    It keeps the softmax normalizer near 1 (log Z near 0). lam = 1e-4 as in
    PaLM. Not the z-loss of de Brebisson and Vincent 2016 (see ``z_loss``).

    Aakanksha Chowdhery et al. 2022, "PaLM: Scaling Language Modeling with
    Pathways", arXiv:2204.02311 (JMLR 2023).
    """

    family = "calibration"
    paper = "Chowdhery et al. 2022 (PaLM)"
    probabilistic = False

    def __init__(self, lam: float = 1e-4) -> None:
        super().__init__()
        if not lam >= 0:
            raise ValueError(f"z_loss_reg needs lam >= 0, got {lam}")
        self.lam = float(lam)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        log_z = logits.logsumexp(dim=1)
        return log_z - gather(logits, target) + self.lam * log_z.pow(2)


@register_loss("encouraging")
class EncouragingLoss(Loss):
    """Encouraging loss: CE plus a bonus that keeps rewarding well-classified examples.

        EL = -log p_y + b(p_y),  b(p) = log(1 - p)                          for p <= e
                                      = log(1 - e) - (p - e) / (1 - e)      for p > e

    e = ``log_end``: past it the bonus continues along its tangent (the paper's
    conservative bonus); log_end = 1 is the full bonus log(1 - p_y), computed
    stably. Default log_end = 0.75, the official code's default. The official
    code clamps 1 - p_y at 1e-5 before the log (``bonus_clamp: 1.0e-05``; with
    log_end < 1 - 1e-5 the tangent takes over first, so it binds only for the
    full bonus, where it also stops the gradient); the default
    ``bonus_clamp: 0`` leaves it out.

    Guangxiang Zhao, Wenkai Yang, Xuancheng Ren, Lei Li, Yunfang Wu, Xu Sun
    2022, "Well-classified Examples are Underestimated in Classification with
    Deep Neural Networks", AAAI.
    """

    family = "calibration"
    paper = "Zhao et al. 2022"

    def __init__(self, log_end: float = 0.75, bonus_clamp: float = 0.0) -> None:
        super().__init__()
        if not 0.0 < log_end <= 1.0:
            raise ValueError(f"encouraging needs log_end in (0, 1], got {log_end}")
        if not 0.0 <= bonus_clamp < 1.0:
            raise ValueError(f"encouraging needs bonus_clamp in [0, 1) (0 = none), got {bonus_clamp}")
        self.log_end, self.bonus_clamp = float(log_end), float(bonus_clamp)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        logp_y = gather(logits.log_softmax(dim=1), target)
        bonus = log1m_p_true(logits, target)
        if self.bonus_clamp > 0:
            bonus = bonus.clamp_min(math.log(self.bonus_clamp))
        if self.log_end < 1.0:
            e = self.log_end
            p_y = logp_y.exp()
            tangent = math.log(1.0 - e) - (p_y - e) / (1.0 - e)
            bonus = torch.where(p_y > e, tangent, bonus)
        return -logp_y + bonus


BIAS_NORMALISATIONS = ("local", "global")
BIAS_WEIGHT_FORMS = ("paper", "code_2021")
# older name of code_2021, still read (run folders that recorded it)
BIAS_FORM_ALIASES = {"code": "code_2021"}


@register_loss("bias_loss")
class BiasLoss(Loss):
    """Bias loss: w(v) * CE, v the scaled variance of the sample's features.

        weight_form paper:     w(v) = exp(alpha v) - beta
                    code_2021: w(v) = exp(beta v) - 1 + alpha

    ``paper`` is the paper's equation and the official code's since commit b557bca
    (lusinlu/bias-loss-skipblocknet, 2022-09-09, "fixed the formula to have the
    same notation as the paper"): the current code. ``code_2021`` is the code's
    first form (commits ae6d68d, 2021-08-10, and 40d67b5, 2021-10-18; ``code``
    is its older name). With alpha = beta = 0.3 the 2021 weight is the paper's
    minus 0.4 (exp(0.3 v) - 0.7 instead of exp(0.3 v) - 0.3). Which form made
    the published numbers no source says; the README's CIFAR-100 table
    (ResNet-18 75.51%, ...) appeared on 2021-08-10 (commit 18ccef0), beside the
    2021 form. ``normalisation``:

    - ``local`` (default): v_i = (var_i - min_j var_j) / (max_j var_j - min_j var_j) over the batch;
    - ``global``: the official code's default, (var_i - m) / (max_j var_j - min_j var_j) with m the
      running minimum of var over every training batch so far (a buffer that checkpoints carry,
      updated in training mode only), so v can exceed 1.

    The paper takes the variance of the last convolutional feature map; our
    models expose penultimate features [B, D], so var_i is the variance over
    the D features of sample i (population or sample variance alike: the
    scaling cancels the factor). alpha = beta = 0.3. The weight keeps its
    gradient (the formula as written); ``detach_weight: true`` makes it a pure
    reweighting, as the official code does (it detaches the features). A batch
    whose variances are all equal gets v = 0 (local). The default is the
    paper's form; ``normalisation: global detach_weight: true`` is the current
    official code, with ``weight_form: code_2021`` its 2021 commits.

    Lusine Abrahamyan, Valentin Ziatchin, Yiming Chen, Nikos Deligiannis 2021,
    "Bias Loss for Mobile Neural Networks", ICCV.
    """

    family = "calibration"
    paper = "Abrahamyan et al. 2021"
    probabilistic = False
    needs_features = True

    def __init__(self, alpha: float = 0.3, beta: float = 0.3, detach_weight: bool = False,
                 normalisation: str = "local", weight_form: str = "paper") -> None:
        super().__init__()
        if normalisation not in BIAS_NORMALISATIONS:
            raise ValueError(
                f"unknown bias_loss normalisation '{normalisation}'; known: {', '.join(BIAS_NORMALISATIONS)}"
            )
        weight_form = BIAS_FORM_ALIASES.get(weight_form, weight_form)
        if weight_form not in BIAS_WEIGHT_FORMS:
            raise ValueError(
                f"unknown bias_loss weight_form '{weight_form}'; known: {', '.join(BIAS_WEIGHT_FORMS)}"
            )
        if weight_form == "paper" and not beta < 1.0:
            raise ValueError(f"bias_loss needs beta < 1 (so the weight exp(alpha v) - beta > 0), got {beta}")
        if weight_form == "code_2021" and not alpha > 0:
            raise ValueError(
                f"bias_loss (weight_form code_2021) needs alpha > 0 (weight exp(beta v) - 1 + alpha), "
                f"got {alpha}"
            )
        if not (alpha >= 0 and beta >= 0):
            raise ValueError(f"bias_loss needs alpha >= 0 and beta >= 0, got {alpha}, {beta}")
        self.alpha, self.beta, self.detach_weight = float(alpha), float(beta), bool(detach_weight)
        self.normalisation, self.weight_form = normalisation, weight_form
        self.register_buffer("global_min", torch.tensor(float("inf"), dtype=torch.float64))

    def scaled_variance(self, features: Tensor) -> Tensor:
        """v_i: the variance of each sample's features, min-max scaled (see the class docstring)."""
        var = features.flatten(1).var(dim=1, unbiased=False)
        lo, hi = var.min(), var.max()
        if self.normalisation == "global":
            low = torch.minimum(self.global_min.to(var.dtype), lo.detach())
            if self.training:
                self.global_min.copy_(low.to(self.global_min.dtype))
            lo_shift = low
        else:
            lo_shift = lo
        return (var - lo_shift) / (hi - lo).clamp_min(1e-12)

    def compute(self, logits: Tensor, target: Tensor, features: Tensor) -> Tensor:
        v = self.scaled_variance(features.detach() if self.detach_weight else features)
        if self.weight_form == "paper":
            weight = torch.exp(self.alpha * v) - self.beta
        else:
            weight = torch.expm1(self.beta * v) + self.alpha
        if self.detach_weight:
            weight = weight.detach()
        return weight * F.cross_entropy(logits, target, reduction="none")


@register_loss("rescaled_square")
class RescaledSquare(Loss):
    """Rescaled square loss on logits: (1/C) [k (z_y - M)^2 + sum_{i != y} z_i^2].

    k = 1, M = 1 (the paper's choice for few classes; it raises both for many
    classes, e.g. k = 15, M = 30 on ImageNet).

    Like Hui, Mikhail Belkin 2021, "Evaluation of Neural Architectures Trained
    with Square Loss vs Cross-Entropy in Classification Tasks", ICLR.
    """

    family = "calibration"
    paper = "Hui and Belkin 2021"
    probabilistic = False

    def __init__(self, k: float = 1.0, M: float = 1.0) -> None:
        super().__init__()
        if not (k > 0 and M > 0):
            raise ValueError(f"rescaled_square needs k > 0 and M > 0, got k={k}, M={M}")
        self.k, self.M = float(k), float(M)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        z_y = gather(logits, target)
        wrong = logits.pow(2).sum(dim=1) - z_y.pow(2)
        return (self.k * (z_y - self.M).pow(2) + wrong) / logits.shape[1]


@register_loss("logit_norm")
class LogitNorm(Loss):
    """LogitNorm: CE on z / (t (||z||_2 + 1e-7)). t = 0.04 (CIFAR-10).

    Hongxin Wei, Renchunzi Xie, Hao Cheng, Lei Feng, Bo An, Yixuan Li 2022,
    "Mitigating Neural Network Overconfidence with Logit Normalization", ICML.
    """

    family = "calibration"
    paper = "Wei et al. 2022 (LogitNorm)"
    probabilistic = False

    def __init__(self, t: float = 0.04) -> None:
        super().__init__()
        if not t > 0:
            raise ValueError(f"logit_norm needs a temperature t > 0, got {t}")
        self.t = float(t)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        norm = torch.linalg.vector_norm(logits, dim=1, keepdim=True) + 1e-7
        return F.cross_entropy(logits / (self.t * norm), target, reduction="none")

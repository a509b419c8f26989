"""Batch-level losses: classification metrics made differentiable over the whole batch."""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench.losses.base import Loss, register_loss

ANYLOSS_METRICS = ("f_beta", "gmean", "balanced_accuracy")
ANYLOSS_AVERAGES = ("auto", "binary", "macro")
# the amplifier's L that ``L: auto`` takes: the paper's for two classes, a gentler one for the macro extension
ANYLOSS_AUTO_L = {"binary": 73.0, "macro": 20.0}


def amplify(p: Tensor, L: float, threshold: float = 0.5) -> Tensor:
    """AnyLoss's approximation function A(p) = 1 / (1 + exp(-L (p - t))), t = 1/2 in the paper:
    it pushes p towards 0 below the threshold t and towards 1 above it."""
    return torch.sigmoid(L * (p - threshold))


def soft_metric(y: Tensor, y_hat: Tensor, metric: str, beta: float, eps: float) -> Tensor:
    """The metric of each column from a soft confusion matrix (Han et al. 2024, eqs. of section 3).

    ``y`` [N, K] 0/1 labels, ``y_hat`` [N, K] amplified scores; per column
    TP = sum y y_hat, FN = sum y - TP, FP = sum y_hat - TP, TN = N - sum y - sum y_hat + TP, and with
    n1 = sum y, n0 = N - n1 (s = ``eps``, as in the official code):

        f_beta             (1 + b^2) TP / (b^2 n1 + sum y_hat + s)   (= (1+b^2)TP / ((1+b^2)TP + FP + b^2 FN))
        gmean              TP TN / (n1 n0 + s)                      (TPR x TNR: the code's G-mean^2)
        balanced_accuracy  (n0 TP + n1 TN) / (2 n1 n0 + s)          (= (TPR + TNR) / 2)
    """
    n = y.shape[0]
    tp = (y * y_hat).sum(0)
    n1, pred1 = y.sum(0), y_hat.sum(0)
    n0 = n - n1
    if metric == "f_beta":
        b2 = beta * beta
        return (1 + b2) * tp / (b2 * n1 + pred1 + eps)
    tn = n - n1 - pred1 + tp
    if metric == "gmean":
        return tp * tn / (n1 * n0 + eps)
    return (n0 * tp + n1 * tn) / (2 * n1 * n0 + eps)


@register_loss("anyloss")
class AnyLoss(Loss):
    """AnyLoss: 1 - M(batch), a confusion-matrix metric M of amplified probabilities, over the batch.

    Each probability is amplified, y_hat = A(p) = 1 / (1 + exp(-L (p - 0.5))),
    and the metric (``metric``: ``f_beta`` with ``beta``, ``gmean``,
    ``balanced_accuracy``; see ``soft_metric``) is computed from the soft
    confusion matrix of the batch: the loss exists for the batch only, not per
    sample (``level = "batch"``), and depends on the batch's class composition.

    Published for binary tasks: with two classes (``average: binary``, which
    ``auto`` picks for C = 2) p is the probability of class 1, softmax(z)_1 =
    sigmoid(z_1 - z_0), as the official code's sigmoid output. For C > 2,
    ``average: macro`` (``auto``'s choice) is lossbench's own extension, not
    the paper's: one-vs-rest per class (p = softmax(z)_c, y = 1[label = c]),
    the metric averaged over the classes present in the batch (a class absent
    from the batch has no recall). A batch of one class is refused.
    ``threshold`` is the amplifier's centre t: ``auto`` takes the paper's 1/2
    for ``binary`` and 1/C for ``macro``. With t = 1/2 and L = 73, C = 10
    softmax probabilities start near 1/10, where A is flat (A'(0.1) = 73 A (1 - A)
    ~ 2e-11): one-vs-rest AnyLoss then never leaves chance on digits
    (benchmarks/loss_shapes.md); at t = 1/C the uniform start sits at A's
    steepest point.

    ``L`` is the amplifier's steepness: ``auto`` takes the paper's 73 for
    ``binary`` and 20 for ``macro``. At t = 1/C, L = 73 saturates A within
    about 0.1 of t: a wrong class whose probability has passed 0.3 counts as a
    predicted positive (a false positive) with A'(0.3) = 73 A (1 - A) ~ 3e-5, so
    nothing pulls it back, and a sample can stay "positive" for two classes
    while the argmax is the wrong one. On clean digits (MLP, SGD lr 0.1, batch
    64, 20 epochs, seed 0) L = 73 reached 0.61 test accuracy (unstable from
    epoch to epoch: 0.25-0.73), L = 20 0.93 (seeds 0-2: 0.929, 0.922, 0.929;
    A'(0.3) = 0.35), L = 10 0.92, L = 5 0.77, against CE's 0.98; a lower
    learning rate (0.01) or larger batches (256) did not help at L = 73 (0.11,
    0.22). L = 20 has its price: a class at p ~ 0 still counts A(0) = 0.12 of
    a positive, a floor on the loss (0.42 at the end of that run) that leaves
    the argmax alone. The macro form still trails CE: it optimizes one-vs-rest
    F1 at the threshold 1/C, not the argmax.

    Defaults are the official code's (doheonhan/anyloss_extension) for two
    classes: L = 73, s = 1e-5, beta = 1 (F1). Its G-mean surrogate is
    TP TN / (n1 n0), the product TPR x TNR without the square root.

    Doheon Han, Nuno Moniz, Nitesh V. Chawla 2024, "AnyLoss: Transforming
    Classification Metrics into Loss Functions", KDD.
    """

    family = "metric"
    paper = "Han, Moniz, Chawla 2024"
    level = "batch"

    def __init__(self, metric: str = "f_beta", beta: float = 1.0, L: float | str = "auto", eps: float = 1e-5,
                 average: str = "auto", threshold: float | str = "auto",
                 num_classes: int | None = None) -> None:
        super().__init__()
        if metric not in ANYLOSS_METRICS:
            raise ValueError(f"unknown anyloss metric '{metric}'; known: {', '.join(ANYLOSS_METRICS)}")
        if average not in ANYLOSS_AVERAGES:
            raise ValueError(f"unknown anyloss average '{average}'; known: {', '.join(ANYLOSS_AVERAGES)}")
        if L != "auto" and (isinstance(L, (str, bool)) or not float(L) > 0):
            raise ValueError(f"anyloss needs L > 0 or 'auto' (73 for two classes, 20 above), got {L!r}")
        if not (beta > 0 and eps > 0):
            raise ValueError(f"anyloss needs beta > 0, L > 0 and eps > 0, got beta={beta}, L={L}, eps={eps}")
        if average == "binary" and num_classes is not None and num_classes != 2:
            raise ValueError(f"anyloss average=binary is for two classes, the run has {num_classes}; "
                             f"use average=macro (one-vs-rest, lossbench's extension)")
        if threshold != "auto" and (isinstance(threshold, (str, bool)) or not 0.0 < float(threshold) < 1.0):
            raise ValueError(f"anyloss needs threshold in (0, 1) or 'auto', got {threshold!r}")
        self.metric, self.beta, self.eps = metric, float(beta), float(eps)
        self.L = L if L == "auto" else float(L)
        self.average = average
        self.threshold = threshold if threshold == "auto" else float(threshold)

    def prepare(self, labels: Tensor, batch_size: int, device: torch.device) -> None:
        if batch_size < 2 or len(labels.unique()) < 2:
            raise ValueError(f"anyloss scores a batch's confusion matrix and needs batches of two classes or "
                             f"more; got trainer.batch_size={batch_size} and {len(labels.unique())} "
                             f"class(es) in the training labels")

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        c = logits.shape[1]
        present = torch.bincount(target, minlength=c) > 0
        if int(present.sum()) < 2:
            raise ValueError(f"anyloss needs a batch of two classes or more (its metric is over the batch's "
                             f"confusion matrix); got {len(target)} sample(s), all of class "
                             f"{int(target[0])}; "
                             f"raise trainer.batch_size")
        p = logits.softmax(dim=1)
        y = torch.zeros_like(p).scatter_(1, target[:, None], 1.0)
        average = self.average if self.average != "auto" else ("binary" if c == 2 else "macro")
        if average == "binary":
            if c != 2:
                raise ValueError(f"anyloss average=binary is for two classes, got {c}")
            p, y, present = p[:, 1:], y[:, 1:], present[1:]
        threshold = self.threshold if self.threshold != "auto" else (0.5 if average == "binary" else 1.0 / c)
        steepness = ANYLOSS_AUTO_L[average] if self.L == "auto" else self.L
        scores = soft_metric(y, amplify(p, steepness, threshold), self.metric, self.beta, self.eps)
        return 1.0 - scores[present].mean()

"""Accuracy-type and proper-scoring metrics of softmax(logits) over a whole split."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def probabilities(logits: Tensor) -> Tensor:
    """softmax(z) at the logits' precision (float32 for half types); sums over a split use float64."""
    return logits.to(torch.float64 if logits.dtype == torch.float64 else torch.float32).softmax(dim=1)


def accuracy(logits: Tensor, labels: Tensor) -> float:
    """Top-1 accuracy: (1/n) sum_i [argmax_k z_ik = y_i] (NaN for an empty split)."""
    if len(labels) == 0:
        return float("nan")
    return (logits.argmax(1) == labels).sum().item() / len(labels)


def top_k_accuracy(logits: Tensor, labels: Tensor, k: int = 5) -> float:
    """Top-k accuracy: (1/n) sum_i [y_i is among the k largest z_i]; ties broken by index."""
    if len(labels) == 0:
        return float("nan")
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return (top == labels[:, None]).any(dim=1).sum().item() / len(labels)


def class_accuracy(logits: Tensor, labels: Tensor) -> list[float | None]:
    """Accuracy within each true class k: |{i: y_i = k, argmax z_i = k}| / |{i: y_i = k}| (None if empty)."""
    c = logits.shape[1]
    hits = torch.bincount(labels[logits.argmax(1) == labels], minlength=c).tolist()
    totals = torch.bincount(labels, minlength=c).tolist()
    return [h / t if t else None for h, t in zip(hits, totals, strict=True)]


def balanced_accuracy(logits: Tensor, labels: Tensor) -> float:
    """Mean over the classes present in ``labels`` of their recall, (1/|K|) sum_k TP_k / n_k
    (scikit-learn's ``balanced_accuracy_score``; Brodersen et al. 2010). NaN for an empty split."""
    if len(labels) == 0:
        return float("nan")
    recall = [r for r in class_accuracy(logits, labels) if r is not None]
    return sum(recall) / len(recall)


def f1(logits: Tensor, labels: Tensor) -> float:
    """F1 = 2 TP / (2 TP + FP + FN) of the predicted classes argmax_k z_ik. Two classes: of class 1
    (the positive class; scikit-learn's ``f1_score`` average="binary"); more: the mean over the
    classes that occur in the labels or the predictions (average="macro"). A class with
    2 TP + FP + FN = 0 scores 0, as scikit-learn's default. NaN for an empty split."""
    if len(labels) == 0:
        return float("nan")
    c = logits.shape[1]
    pred = logits.argmax(1)
    tp = torch.bincount(labels[pred == labels], minlength=c).double()
    true = torch.bincount(labels, minlength=c).double()
    predicted = torch.bincount(pred, minlength=c).double()
    denominator = true + predicted  # 2 TP + FP + FN
    scores = torch.where(denominator > 0, 2 * tp / denominator.clamp_min(1), torch.zeros_like(tp))
    if c == 2:
        return scores[1].item()
    return scores[denominator > 0].mean().item()


def nll(logits: Tensor, labels: Tensor) -> float:
    """Negative log-likelihood: -(1/n) sum_i log softmax(z_i)_{y_i}."""
    if len(labels) == 0:
        return float("nan")
    return F.cross_entropy(logits.double(), labels).item()


def brier(logits: Tensor, labels: Tensor) -> float:
    """Multiclass Brier score: (1/n) sum_i sum_k (p_ik - [y_i = k])^2, in [0, 2].

    Brier 1950, "Verification of forecasts expressed in terms of probability";
    the sum over classes (not the mean) as in Ovadia et al. 2019.
    """
    if len(labels) == 0:
        return float("nan")
    return _brier(probabilities(logits), labels)


def _brier(probs: Tensor, labels: Tensor) -> float:
    onehot = F.one_hot(labels, probs.shape[1]).double()
    return (probs.double() - onehot).pow(2).sum(dim=1).mean().item()


def _top1(probs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """(confidence max_k p_ik, correctness [argmax_k p_ik = y_i]) per sample."""
    confidence, prediction = probs.max(dim=1)
    return confidence, (prediction == labels).to(probs.dtype)


"""Calibration of predicted probabilities: ECE and its variants, MCE, confidence gap, reliability bins.

Equal-width binning is torchmetrics' (``multiclass_calibration_error``), so
that ECE and MCE agree with it: with B bins, bin b holds confidences in
[b/B, (b+1)/B), compared in float32, and a confidence that rounds to 1.0 in
float32 falls in an extra bin of its own, index B. Bin statistics are summed
in float64 (torchmetrics sums in float32, so the two differ by its rounding,
about 1e-7 per thousand samples).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench.metrics.classification import _top1, probabilities

N_BINS = 15


def bin_index(values: Tensor, n_bins: int = N_BINS) -> Tensor:
    """Equal-width bin of each value in [0, 1]: floor(v B), so v = 1 gets the extra bin B.

    Values are compared in float32 against float32 edges, as torchmetrics does.
    """
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float32, device=values.device)
    return torch.bucketize(values.float(), edges, right=True) - 1


def _bin_sums(index: Tensor, confidence: Tensor, correct: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per bin: count |B_b|, sum of confidences, sum of correctness (float64)."""
    zeros = torch.zeros(size, dtype=torch.float64, device=confidence.device)
    count = zeros.scatter_add(0, index, torch.ones_like(confidence, dtype=torch.float64))
    conf = zeros.scatter_add(0, index, confidence.double())
    acc = zeros.scatter_add(0, index, correct.double())
    return count, conf, acc


def _ece_from_sums(count: Tensor, conf: Tensor, acc: Tensor) -> float:
    """sum_b |B_b|/n |acc(B_b) - conf(B_b)| = (1/n) sum_b |sum acc - sum conf|."""
    n = count.sum()
    return ((acc - conf).abs().sum() / n).item() if n > 0 else float("nan")


def _mce_from_sums(count: Tensor, conf: Tensor, acc: Tensor) -> float:
    """max over non-empty bins of |acc(B_b) - conf(B_b)|."""
    full = count > 0
    if not full.any():
        return float("nan")
    return ((acc[full] - conf[full]).abs() / count[full]).max().item()


def _equal_width(probs: Tensor, labels: Tensor, n_bins: int) -> tuple[Tensor, Tensor, Tensor]:
    confidence, correct = _top1(probs, labels)
    return _bin_sums(bin_index(confidence, n_bins), confidence, correct, n_bins + 1)


def _equal_mass(probs: Tensor, labels: Tensor, n_bins: int) -> tuple[Tensor, Tensor, Tensor]:
    """Bins of equal count: the sample of rank r (by increasing confidence) goes to bin floor(r B / n)."""
    confidence, correct = _top1(probs, labels)
    order = confidence.argsort(stable=True)
    rank_bin = torch.arange(len(confidence), device=probs.device) * n_bins // max(len(confidence), 1)
    return _bin_sums(rank_bin, confidence[order], correct[order], n_bins)


def _classwise(probs: Tensor, labels: Tensor, n_bins: int) -> float:
    """(1/C) sum_k sum_b |B_kb|/n |freq(y = k in B_kb) - mean p_k in B_kb|, equal-width bins on p_k."""
    n, c = probs.shape
    if n == 0:
        return float("nan")
    size = n_bins + 1
    index = (bin_index(probs, n_bins) + torch.arange(c, device=probs.device) * size).flatten()
    onehot = F.one_hot(labels, c)
    _, conf, freq = _bin_sums(index, probs.flatten(), onehot.flatten(), c * size)
    return ((freq - conf).abs().sum() / (n * c)).item()


def ece(logits: Tensor, labels: Tensor, n_bins: int = N_BINS) -> float:
    """Expected calibration error over B equal-width bins of the top-label confidence.

    ECE = sum_b |B_b|/n |acc(B_b) - conf(B_b)|; Naeini et al. 2015, Guo et al. 2017.
    """
    return _ece_from_sums(*_equal_width(probabilities(logits), labels, n_bins))


def mce(logits: Tensor, labels: Tensor, n_bins: int = N_BINS) -> float:
    """Maximum calibration error: max_b |acc(B_b) - conf(B_b)| over non-empty equal-width bins.

    Naeini et al. 2015, "Obtaining Well Calibrated Probabilities Using Bayesian Binning", AAAI.
    """
    return _mce_from_sums(*_equal_width(probabilities(logits), labels, n_bins))


def adaptive_ece(logits: Tensor, labels: Tensor, n_bins: int = N_BINS) -> float:
    """ECE over B equal-mass bins: the sorted confidences cut into B runs of n/B samples.

    Nguyen and O'Connor 2015; AdaECE of Mukhoti et al. 2020, "Calibrating Deep
    Neural Networks using Focal Loss", NeurIPS.
    """
    return _ece_from_sums(*_equal_mass(probabilities(logits), labels, n_bins))


def classwise_ece(logits: Tensor, labels: Tensor, n_bins: int = N_BINS) -> float:
    """Classwise ECE: mean over classes k of the binned gap between p_k and [y = k].

    Kull et al. 2019, "Beyond temperature scaling: Obtaining well-calibrated
    multiclass probabilities with Dirichlet calibration", NeurIPS.
    """
    return _classwise(probabilities(logits), labels, n_bins)


def mean_confidence(logits: Tensor, labels: Tensor | None = None) -> float:
    """Mean top-label confidence: (1/n) sum_i max_k p_ik."""
    probs = probabilities(logits)
    return probs.max(dim=1).values.double().mean().item() if len(probs) else float("nan")


def confidence_gap(logits: Tensor, labels: Tensor) -> float:
    """Signed gap: mean confidence - accuracy (> 0 over-confident, < 0 under-confident)."""
    confidence, correct = _top1(probabilities(logits), labels)
    return (confidence.double() - correct.double()).mean().item() if len(labels) else float("nan")


def reliability(logits: Tensor, labels: Tensor, n_bins: int = N_BINS) -> dict:
    """What a reliability diagram draws: per equal-width bin, mean confidence, accuracy and count.

    The lists have B + 1 entries; the last is the bin of confidences equal to 1.
    Empty bins have confidence and accuracy None.
    """
    return _reliability(probabilities(logits), labels, n_bins)


def _reliability(probs: Tensor, labels: Tensor, n_bins: int) -> dict:
    count, conf, acc = _equal_width(probs, labels, n_bins)
    counts = count.long().tolist()
    return {
        "n_bins": n_bins,
        "confidence": [c / k if k else None for c, k in zip(conf.tolist(), counts, strict=True)],
        "accuracy": [a / k if k else None for a, k in zip(acc.tolist(), counts, strict=True)],
        "count": counts,
    }


def calibration_metrics(probs: Tensor, labels: Tensor, n_bins: int = N_BINS) -> dict[str, float]:
    """Every calibration figure from one probability matrix (summary.json names, no prefix)."""
    if len(labels) == 0:
        nan = float("nan")
        return dict.fromkeys(("ece", "ece_adaptive", "ece_classwise", "mce", "confidence", "gap"), nan)
    sums = _equal_width(probs, labels, n_bins)
    confidence, correct = _top1(probs, labels)
    return {
        "ece": _ece_from_sums(*sums),
        "ece_adaptive": _ece_from_sums(*_equal_mass(probs, labels, n_bins)),
        "ece_classwise": _classwise(probs, labels, n_bins),
        "mce": _mce_from_sums(*sums),
        "confidence": confidence.double().mean().item(),
        "gap": (confidence.double() - correct.double()).mean().item(),
    }

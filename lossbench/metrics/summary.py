"""What a run records: the end-of-run summary and the cheap per-epoch figures."""

from __future__ import annotations

from torch import Tensor

from lossbench.metrics.calibration import (
    N_BINS,
    _ece_from_sums,
    _equal_width,
    _reliability,
    calibration_metrics,
)
from lossbench.metrics.classification import (
    _brier,
    accuracy,
    class_accuracy,
    nll,
    probabilities,
    top_k_accuracy,
)
from lossbench.metrics.temperature import fit_temperature, scale

# Figures recomputed after temperature scaling (suffix _ts); accuracy does not change with T > 0.
CALIBRATION_KEYS = ("nll", "brier", "ece", "ece_adaptive", "ece_classwise", "mce", "confidence", "gap")


def _scores(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """NLL, Brier and every calibration figure of one split (no prefix)."""
    probs = probabilities(logits)
    empty = len(labels) == 0
    return {
        "nll": float("nan") if empty else nll(logits, labels),
        "brier": float("nan") if empty else _brier(probs, labels),
        **calibration_metrics(probs, labels, N_BINS),
    }


def summarize(val_logits: Tensor, val_labels: Tensor, test_logits: Tensor, test_labels: Tensor) -> dict:
    """End-of-run metrics for summary.json; test labels are clean, validation labels noisy.

    Keys: test_acc, test_top5_acc (more than 10 classes), test_class_acc (a
    list: accuracy within each true class), test_{nll, brier, ece,
    ece_adaptive, ece_classwise, mce, confidence, gap}; temperature (fitted on
    validation by NLL) and the same test figures after scaling, suffixed _ts;
    val_acc, val_nll, val_ece and val_nll_ts, val_ece_ts; test_reliability and
    test_reliability_ts (per-bin confidence, accuracy and count, for the diagrams).
    """
    out: dict = {"test_acc": accuracy(test_logits, test_labels)}
    if test_logits.shape[1] > 10:
        out["test_top5_acc"] = top_k_accuracy(test_logits, test_labels, 5)
    out["test_class_acc"] = class_accuracy(test_logits, test_labels)
    out.update({f"test_{k}": v for k, v in _scores(test_logits, test_labels).items()})
    temperature = fit_temperature(val_logits, val_labels)
    scaled = scale(test_logits, temperature)
    out["temperature"] = temperature
    out.update({f"test_{k}_ts": v for k, v in _scores(scaled, test_labels).items()})
    if len(val_labels):
        val_scaled = scale(val_logits, temperature)
        out.update(
            val_acc=accuracy(val_logits, val_labels),
            val_nll=nll(val_logits, val_labels),
            val_ece=_ece_from_sums(*_equal_width(probabilities(val_logits), val_labels, N_BINS)),
            val_nll_ts=nll(val_scaled, val_labels),
            val_ece_ts=_ece_from_sums(*_equal_width(probabilities(val_scaled), val_labels, N_BINS)),
        )
    out["test_reliability"] = _reliability(probabilities(test_logits), test_labels, N_BINS)
    out["test_reliability_ts"] = _reliability(probabilities(scaled), test_labels, N_BINS)
    return out


def epoch_metrics(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """Cheap per-epoch figures of one split, no prefix: acc, nll, brier, ece (one softmax, no fitting)."""
    if len(labels) == 0:
        return {}
    probs = probabilities(logits)
    return {
        "acc": accuracy(logits, labels),
        "nll": nll(logits, labels),
        "brier": _brier(probs, labels),
        "ece": _ece_from_sums(*_equal_width(probs, labels, N_BINS)),
    }

"""Metrics over a whole split: functions of (logits, labels), and what a run records."""

from lossbench.metrics.calibration import (
    N_BINS,
    adaptive_ece,
    classwise_ece,
    confidence_gap,
    ece,
    mce,
    mean_confidence,
    reliability,
)
from lossbench.metrics.classification import accuracy, brier, class_accuracy, nll, top_k_accuracy
from lossbench.metrics.summary import CALIBRATION_KEYS, epoch_metrics, summarize
from lossbench.metrics.temperature import fit_temperature

__all__ = [
    "CALIBRATION_KEYS",
    "N_BINS",
    "accuracy",
    "adaptive_ece",
    "brier",
    "class_accuracy",
    "classwise_ece",
    "confidence_gap",
    "ece",
    "epoch_metrics",
    "fit_temperature",
    "mce",
    "mean_confidence",
    "nll",
    "reliability",
    "summarize",
    "top_k_accuracy",
]

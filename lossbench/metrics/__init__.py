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
from lossbench.metrics.classification import (
    accuracy,
    balanced_accuracy,
    brier,
    class_accuracy,
    f1,
    nll,
    top_k_accuracy,
)
from lossbench.metrics.summary import epoch_metrics, selection_figures, summarize
from lossbench.metrics.temperature import fit_temperature
from lossbench.metrics.views import (
    CALIBRATION_KEYS,
    CALIBRATOR_TITLES,
    RENAMED,
    SCORE_KEYS,
    VIEWS,
    calibrator_of,
    metric_view,
    renamed_hint,
    view_text,
)

__all__ = [
    "balanced_accuracy",
    "f1",
    "CALIBRATION_KEYS",
    "CALIBRATOR_TITLES",
    "N_BINS",
    "RENAMED",
    "SCORE_KEYS",
    "VIEWS",
    "accuracy",
    "adaptive_ece",
    "brier",
    "calibrator_of",
    "class_accuracy",
    "classwise_ece",
    "confidence_gap",
    "ece",
    "epoch_metrics",
    "fit_temperature",
    "mce",
    "mean_confidence",
    "metric_view",
    "nll",
    "reliability",
    "renamed_hint",
    "selection_figures",
    "summarize",
    "top_k_accuracy",
    "view_text",
]

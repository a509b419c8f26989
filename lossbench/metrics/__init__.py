"""Metrics over a whole split: functions of (logits, labels), and what a run records.

The names below are loaded on first use, so that ``lossbench.metrics.views`` (plain
definitions, which the config checks and the report read) imports without torch.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "lossbench.metrics.calibration": ("N_BINS", "adaptive_ece", "classwise_ece", "confidence_gap", "ece",
                                      "mce", "mean_confidence", "reliability"),
    "lossbench.metrics.classification": ("accuracy", "balanced_accuracy", "brier", "class_accuracy", "f1",
                                         "nll", "top_k_accuracy"),
    "lossbench.metrics.summary": ("epoch_metrics", "selection_figures", "stacked_epoch_metrics",
                                  "summarize"),
    "lossbench.metrics.temperature": ("fit_temperature",),
    "lossbench.metrics.views": ("CALIBRATION_KEYS", "CALIBRATOR_TITLES", "RENAMED", "SCORE_KEYS", "VIEWS",
                                "calibrator_of", "metric_view", "renamed_hint", "view_text"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'lossbench.metrics' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

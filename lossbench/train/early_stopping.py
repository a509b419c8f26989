"""Early stopping on a validation figure (``trainer.early_stopping``; off unless ``patience`` is set).

Training stops when the monitored figure has not improved by more than ``min_delta`` for
``patience`` epochs: for a maximised figure (accuracy) an epoch improves on the best so far b
when its value v > b + min_delta; for a minimised one (NLL, Brier, ECE) when v < b - min_delta.
The decision is a function of the per-epoch records alone, so a resumed run stops where an
uninterrupted one would. ``view`` picks the validation labels: ``noisy`` (``val_*``, what a
practitioner has) or ``clean`` (``val_clean_*``, the oracle). No torch here: the config checks
use ``check_settings`` before anything is imported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lossbench.core.errors import ConfigError

METRICS = {"acc": "max", "nll": "min", "brier": "min", "ece": "min"}
VIEWS = {"noisy": "val", "clean": "val_clean"}
DEFAULTS = {"patience": None, "metric": "acc", "view": "noisy", "min_delta": 0.0}


def check_settings(settings: dict) -> None:
    """One ConfigError line for a bad ``trainer.early_stopping`` node."""
    prefix = "trainer.early_stopping"
    if not isinstance(settings, dict):
        raise ConfigError(f"{prefix} must be a mapping such as {{patience: 5}}, got {settings!r}")
    for key in settings:
        if key not in DEFAULTS:
            raise ConfigError(f"unknown config key '{prefix}.{key}'; known: {', '.join(DEFAULTS)}")
    patience = settings.get("patience")
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 0):
        raise ConfigError(f"{prefix}.patience must be an integer >= 0 (epochs) or null (off), "
                          f"got {patience!r}")
    metric, view = settings.get("metric", "acc"), settings.get("view", "noisy")
    if metric not in METRICS:
        raise ConfigError(f"{prefix}.metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if view not in VIEWS:
        raise ConfigError(f"{prefix}.view must be one of {', '.join(VIEWS)}, got {view!r}")
    delta = settings.get("min_delta", 0.0)
    number = isinstance(delta, (int, float)) and not isinstance(delta, bool)
    if not number or not math.isfinite(delta) or delta < 0:
        raise ConfigError(f"{prefix}.min_delta must be a number >= 0, got {delta!r}")


@dataclass(frozen=True)
class EarlyStopping:
    """Stop after ``patience`` epochs without an improvement of the validation ``metric`` on ``view``."""

    patience: int
    metric: str = "acc"
    view: str = "noisy"
    min_delta: float = 0.0

    @classmethod
    def from_settings(cls, settings: dict | None) -> EarlyStopping | None:
        """The rule ``trainer.early_stopping`` describes, or None when it is off."""
        if not settings or settings.get("patience") is None:
            return None
        check_settings(dict(settings))
        merged = {**DEFAULTS, **settings}
        return cls(int(merged["patience"]), merged["metric"], merged["view"], float(merged["min_delta"]))

    @property
    def monitor(self) -> str:
        """The per-epoch record key watched (val_acc, val_clean_nll, ...)."""
        return f"{VIEWS[self.view]}_{self.metric}"

    @property
    def mode(self) -> str:
        return METRICS[self.metric]

    def _better(self, value: float, best: float) -> bool:
        if self.mode == "max":
            return value > best + self.min_delta
        return value < best - self.min_delta

    def best(self, history: list[dict]) -> tuple[int, float] | None:
        """(epoch, value) of the best record so far; a later epoch must beat it by min_delta."""
        best = None
        for record in history:
            value = record.get(self.monitor)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            if best is None or self._better(value, best[1]):
                best = (int(record["epoch"]), float(value))
        return best

    def should_stop(self, history: list[dict]) -> bool:
        """Whether ``patience`` epochs have passed since the best one (Lightning's rule)."""
        best = self.best(history)  # patience 0: stop at the first epoch that does not improve
        return best is not None and int(history[-1]["epoch"]) - best[0] >= max(self.patience, 1)

    def record(self, history: list[dict], epochs: int) -> dict:
        """summary.json's record: the rule, the epoch it stopped at (None: every epoch ran), the best."""
        best = self.best(history)
        stopped = len(history) < epochs and self.should_stop(history)
        return {"monitor": self.monitor, "mode": self.mode, "patience": self.patience,
                "min_delta": self.min_delta, "stopped_epoch": len(history) if stopped else None,
                "best_epoch": best[0] if best else None}

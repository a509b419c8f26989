"""What a run records: the end-of-run summary and the cheap per-epoch figures.

Validation labels come in two views. ``noisy``: the labels a practitioner
has (they carry the training noise). ``clean``: the true labels, which
lossbench knows; fitting or selecting on them is an oracle that isolates the
method from the noise in its validation split. Everything fitted or selected
on validation is recorded once per view, and the name ends with the view:
``temperature_noisy``, ``test_ece_ts_clean``, ``best_val_acc_noisy``, ...
Validation figures are prefixed by the labels they are scored against:
``val_*`` (noisy labels, as training sees them) and ``val_clean_*``.
"""

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
from lossbench.metrics.views import VAL_PREFIX


def _scores(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """NLL, Brier and every calibration figure of one split (no prefix)."""
    probs = probabilities(logits)
    empty = len(labels) == 0
    return {
        "nll": float("nan") if empty else nll(logits, labels),
        "brier": float("nan") if empty else _brier(probs, labels),
        **calibration_metrics(probs, labels, N_BINS),
    }


def _val_ece(logits: Tensor, labels: Tensor) -> float:
    return _ece_from_sums(*_equal_width(probabilities(logits), labels, N_BINS))


def summarize(val_logits: Tensor, val_labels: Tensor, test_logits: Tensor, test_labels: Tensor,
              val_clean_labels: Tensor | None = None) -> dict:
    """End-of-run metrics for summary.json; test labels are clean, ``val_labels`` noisy.

    ``val_clean_labels`` are the validation split's true labels (None: the
    validation labels are clean, both views coincide). Keys: test_acc,
    test_top5_acc (more than 10 classes), test_class_acc (a list: accuracy
    within each true class), test_{nll, brier, ece, ece_adaptive,
    ece_classwise, mce, confidence, gap}, test_reliability (per-bin
    confidence, accuracy and count); per view v in (noisy, clean):
    temperature_v (fitted on that view's validation labels by NLL; Guo et al.
    2017), test_<m>_ts_v and test_reliability_ts_v after scaling by it;
    val_acc, val_nll, val_ece on the noisy labels and val_clean_acc,
    val_clean_nll, val_clean_ece on the clean ones, with val_nll_ts_noisy,
    val_ece_ts_noisy, val_clean_nll_ts_clean, val_clean_ece_ts_clean (scored
    on the labels that fitted T).
    """
    views = {"noisy": val_labels, "clean": val_labels if val_clean_labels is None else val_clean_labels}
    test_probs = probabilities(test_logits)
    out: dict = {"test_acc": accuracy(test_logits, test_labels)}
    if test_logits.shape[1] > 10:
        out["test_top5_acc"] = top_k_accuracy(test_logits, test_labels, 5)
    out["test_class_acc"] = class_accuracy(test_logits, test_labels)
    out.update({f"test_{k}": v for k, v in _scores(test_logits, test_labels).items()})
    out["test_reliability"] = _reliability(test_probs, test_labels, N_BINS)
    for view, labels in views.items():
        temperature = fit_temperature(val_logits, labels)
        scaled = scale(test_logits, temperature)
        out[f"temperature_{view}"] = temperature
        out.update({f"test_{k}_ts_{view}": v for k, v in _scores(scaled, test_labels).items()})
        out[f"test_reliability_ts_{view}"] = _reliability(probabilities(scaled), test_labels, N_BINS)
    for view, labels in views.items():
        if not len(labels):
            continue
        prefix, val_scaled = VAL_PREFIX[view], scale(val_logits, out[f"temperature_{view}"])
        out.update({
            f"{prefix}_acc": accuracy(val_logits, labels),
            f"{prefix}_nll": nll(val_logits, labels),
            f"{prefix}_ece": _val_ece(val_logits, labels),
            f"{prefix}_nll_ts_{view}": nll(val_scaled, labels),
            f"{prefix}_ece_ts_{view}": _val_ece(val_scaled, labels),
        })
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


def selection_figures(history: list[dict]) -> dict:
    """Validation-selected figures per view: best_val_acc_v, best_val_epoch_v, test_acc_at_best_val_v.

    The selected epoch maximizes the view's validation accuracy (val_acc on the
    noisy labels, val_clean_acc on the clean ones); ties go to the earlier
    epoch. A view that no epoch recorded gives None.
    """
    out: dict = {}
    for view, prefix in VAL_PREFIX.items():
        key = f"{prefix}_acc"
        scored = [r for r in history if isinstance(r.get(key), (int, float))]
        best = max(scored, key=lambda r: (r[key], -r["epoch"])) if scored else None
        out[f"best_val_acc_{view}"] = best[key] if best else None
        out[f"best_val_epoch_{view}"] = best["epoch"] if best else None
        out[f"test_acc_at_best_val_{view}"] = best.get("test_acc") if best else None
    return out

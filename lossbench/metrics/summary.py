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

import time
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench.metrics import smooth
from lossbench.metrics.calibration import (
    N_BINS,
    _bin_sums,
    _ece_from_sums,
    _equal_width,
    _reliability,
    bin_index,
    calibration_metrics,
)
from lossbench.metrics.classification import (
    _brier,
    _top1,
    accuracy,
    balanced_accuracy,
    class_accuracy,
    f1,
    nll,
    probabilities,
    top_k_accuracy,
)
from lossbench.metrics.views import SMOOTH_CLASSWISE_MAX, VAL_PREFIX


def _scores(logits: Tensor, labels: Tensor, smoothed: bool = False) -> dict[str, float]:
    """NLL, Brier and every calibration figure of one split (no prefix); with ``smoothed``, SmoothECE
    (smece, its bandwidth smooth_sigma, and smece_classwise for at most SMOOTH_CLASSWISE_MAX
    classes: it costs one bandwidth search per class) when relplot is installed."""
    probs = probabilities(logits)
    empty = len(labels) == 0
    out = {
        "nll": float("nan") if empty else nll(logits, labels),
        "brier": float("nan") if empty else _brier(probs, labels),
        **calibration_metrics(probs, labels, N_BINS),
    }
    if smoothed and smooth.relplot_available():
        out["smece"], out["smooth_sigma"] = smooth.smooth_ece(probs, labels)
        if probs.shape[1] <= SMOOTH_CLASSWISE_MAX:
            out["smece_classwise"] = smooth.smooth_ece_classwise(probs, labels)
    return out


def _diagram(logits: Tensor, labels: Tensor, smoothed: bool = False) -> dict:
    """Reliability bins (and with ``smoothed``, relplot's smoothed curve under "smooth")."""
    probs = probabilities(logits)
    out = _reliability(probs, labels, N_BINS)
    if smoothed and len(labels) and smooth.relplot_available():
        out["smooth"] = smooth.smooth_reliability(probs, labels)
    return out


def _val_ece(logits: Tensor, labels: Tensor) -> float:
    return _ece_from_sums(*_equal_width(probabilities(logits), labels, N_BINS))


def summarize(val_logits: Tensor, val_labels: Tensor, test_logits: Tensor, test_labels: Tensor,
              val_clean_labels: Tensor | None = None, calibrators: Sequence | None = None,
              val_views: Mapping[str, Tensor] | None = None,
              test_views: Mapping[str, Tensor] | None = None, smoothed: bool = False) -> dict:
    """End-of-run metrics for summary.json; test labels are clean, ``val_labels`` noisy.

    ``val_clean_labels`` are the validation split's true labels (None: the
    validation labels are clean, both views coincide). ``calibrators``
    (lossbench.calibrate objects; none when None: lossbench.train.final_eval passes the default,
    temperature scaling) are each fitted on the
    validation logits once per view v in (noisy, clean) and applied to test;
    ``val_views`` / ``test_views`` hold, per calibrator key that needs them, the
    model's logits on transformed inputs ([V, N, C]).

    Keys: test_acc, test_top5_acc (more than 10 classes), test_class_acc (a
    list: accuracy within each true class), test_balanced_acc (their mean over
    the classes present), test_f1 (binary: of class 1; else macro), test_<m> for m in SCORE_KEYS,
    test_reliability (per-bin confidence, accuracy and count, and relplot's
    smoothed curve); per calibrator c (its key: ts, vs, ms, dir, ca) and view v:
    test_<m>_<c>_<v>, test_reliability_<c>_<v>, <c>_fit_seconds_<v> (wall time
    of the fit), what the fit reports (temperature_<v> for ts,
    dir_reg_lambda_<v>, ca_temperature_mean_<v>, ...), val_nll_<c>_noisy,
    val_ece_<c>_noisy and val_clean_nll_<c>_clean, val_clean_ece_<c>_clean
    (scored on the labels that fitted it); <c>_params (fitted parameters);
    calibrators (the keys, in order); val_acc, val_nll, val_ece on the noisy
    labels and val_clean_acc, val_clean_nll, val_clean_ece on the clean ones.
    A calibrator whose min_samples exceeds the validation split is skipped. SmoothECE (smece,
    smooth_sigma, smece_classwise and the smoothed curves) only with ``smoothed`` (the run's
    ``smooth_ece=true``): relplot's import and bandwidth searches cost seconds.
    """
    calibrators = list(calibrators or ())
    views = {"noisy": val_labels, "clean": val_labels if val_clean_labels is None else val_clean_labels}
    num_classes = test_logits.shape[1]
    out: dict = {"test_acc": accuracy(test_logits, test_labels)}
    if num_classes > 10:
        out["test_top5_acc"] = top_k_accuracy(test_logits, test_labels, 5)
    out["test_class_acc"] = class_accuracy(test_logits, test_labels)
    out["test_balanced_acc"] = balanced_accuracy(test_logits, test_labels)
    out["test_f1"] = f1(test_logits, test_labels)
    out.update({f"test_{k}": v for k, v in _scores(test_logits, test_labels, smoothed).items()})
    out["test_reliability"] = _diagram(test_logits, test_labels, smoothed)
    out["calibrators"] = [c.key for c in calibrators]
    for view, labels in views.items():
        if not len(labels):
            continue
        prefix = VAL_PREFIX[view]
        out.update({f"{prefix}_acc": accuracy(val_logits, labels), f"{prefix}_nll": nll(val_logits, labels),
                    f"{prefix}_ece": _val_ece(val_logits, labels)})
    for calibrator in calibrators:
        key = calibrator.key
        out[f"{key}_params"] = calibrator.num_params(num_classes)
        v_views = (val_views or {}).get(key)
        t_views = (test_views or {}).get(key)
        for view, labels in views.items():
            if len(labels) < calibrator.min_samples(num_classes):
                continue
            started = time.perf_counter()
            fitted = calibrator.fit(val_logits, labels, v_views)
            out[f"{key}_fit_seconds_{view}"] = time.perf_counter() - started
            out[f"{key}_params"] = fitted.num_params
            out.update({f"{name}_{view}": value for name, value in fitted.info.items()})
            calibrated = fitted(test_logits, t_views)
            out.update({f"test_{m}_{key}_{view}": v
                        for m, v in _scores(calibrated, test_labels, smoothed).items()})
            out[f"test_reliability_{key}_{view}"] = _diagram(calibrated, test_labels, smoothed)
            if len(labels):
                val_calibrated, prefix = fitted(val_logits, v_views), VAL_PREFIX[view]
                out[f"{prefix}_nll_{key}_{view}"] = nll(val_calibrated, labels)
                out[f"{prefix}_ece_{key}_{view}"] = _val_ece(val_calibrated, labels)
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


def stacked_epoch_metrics(logits: Tensor, labels: Tensor) -> list[dict[str, float]]:
    """``epoch_metrics`` of K members at once (a pack's): logits [K, N, C], labels [K, N].

    The same figures by the same formulas, in a handful of tensor operations for all K instead of
    about forty for each member (a pack of 8 digits MLPs: 0.3 against 2 ms a split). Accuracy is
    equal to ``epoch_metrics``'s; NLL, Brier and ECE agree to float64 rounding (their sums run
    over other groupings). tests/metrics/test_metrics.py compares the two.
    """
    k, n, c = logits.shape
    if n == 0:
        return [{} for _ in range(k)]
    probs = probabilities(logits.flatten(0, 1))                            # [K N, C]
    flat = labels.flatten()
    hits = (logits.argmax(-1) == labels).sum(1)
    losses = F.cross_entropy(logits.flatten(0, 1).double(), flat, reduction="none").view(k, n)
    brier = (probs.double() - F.one_hot(flat, c).double()).pow(2).sum(1).view(k, n)
    confidence, correct = _top1(probs, flat)
    bins = N_BINS + 1
    index = (bin_index(confidence, N_BINS).view(k, n) + bins * torch.arange(k, device=logits.device)[:, None])
    count, conf, acc = (t.view(k, bins) for t in _bin_sums(index.flatten(), confidence, correct, k * bins))
    ece = (acc - conf).abs().sum(1) / count.sum(1)
    rows = torch.stack((losses.mean(1), brier.mean(1), ece)).T.tolist()
    return [{"acc": h / n, "nll": row[0], "brier": row[1], "ece": row[2]}
            for h, row in zip(hits.tolist(), rows, strict=True)]


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

"""Which validation labels fitted or selected a summary figure: the two views, and the names that say so.

No torch here: the report reads these definitions too.
"""

from __future__ import annotations

# Figures recomputed after each post-hoc calibrator (suffix _<calibrator>_<view>, e.g. _ts_clean).
CALIBRATION_KEYS = ("nll", "brier", "ece", "ece_adaptive", "ece_classwise", "mce", "confidence", "gap")
# SmoothECE (relplot, when installed): top-label, its bandwidth, classwise (up to SMOOTH_CLASSWISE_MAX
# classes).
SMOOTH_KEYS = ("smece", "smooth_sigma", "smece_classwise")
SMOOTH_CLASSWISE_MAX = 20
SCORE_KEYS = CALIBRATION_KEYS + SMOOTH_KEYS
# Calibrator keys (the <calibrator> of summary names) and what legends call them.
CALIBRATOR_TITLES = {
    "ts": "temperature scaling",
    "vs": "vector scaling",
    "ms": "matrix scaling",
    "dir": "Dirichlet calibration",
    "ca": "correctness-aware calibration",
}

# Label views of the validation split, and what each means (legends and docs use these words).
VIEWS = {
    "noisy": "fitted on the noisy validation labels: what a practitioner can do",
    "clean": "fitted on the clean validation labels: the oracle, which isolates the method from label noise",
}
# The per-epoch prefix of each view's validation figures.
VAL_PREFIX = {"noisy": "val", "clean": "val_clean"}

# Summary keys that were ambiguous about the labels they used, and what replaced them.
RENAMED = {
    "temperature": ("temperature_noisy", "temperature_clean"),
    "best_val_acc": ("best_val_acc_noisy", "best_val_acc_clean"),
    "best_val_epoch": ("best_val_epoch_noisy", "best_val_epoch_clean"),
    "test_acc_at_best_val": ("test_acc_at_best_val_noisy", "test_acc_at_best_val_clean"),
    "test_reliability_ts": ("test_reliability_ts_noisy", "test_reliability_ts_clean"),
    "val_nll_ts": ("val_nll_ts_noisy", "val_clean_nll_ts_clean"),
    "val_ece_ts": ("val_ece_ts_noisy", "val_clean_ece_ts_clean"),
    **{f"test_{k}_ts": (f"test_{k}_ts_noisy", f"test_{k}_ts_clean") for k in CALIBRATION_KEYS},
}


def metric_view(name: str) -> str | None:
    """The validation view a summary figure was fitted or selected with ("noisy", "clean"), or None."""
    for view in VIEWS:
        if name.endswith(f"_{view}"):
            return view
    return None


def calibrator_of(name: str) -> str | None:
    """The calibrator key of a figure named ..._<calibrator>_<view> (test_ece_dir_clean: "dir"), or None."""
    view = metric_view(name)
    if view is None:
        return None
    stem = name[: -len(view) - 1]
    for key in CALIBRATOR_TITLES:
        if stem.endswith(f"_{key}") or stem.startswith(f"{key}_"):
            return key
    return "ts" if stem == "temperature" else None


def view_text(name: str) -> str | None:
    """Which validation labels figure ``name`` used, in words (None for a figure that used none).

    A ``_noisy`` / ``_clean`` suffix names the labels that fitted (or, for
    ``best_val`` figures, selected) it, and the calibrator before it is named
    (``test_ece_dir_clean``: Dirichlet calibration fitted on the clean ...); a
    validation figure without one is scored on the labels its prefix names
    (``val_`` noisy, ``val_clean_`` clean).
    """
    view = metric_view(name)
    scored = None
    if name.startswith("val_"):
        scored = "clean" if name.startswith("val_clean_") else "noisy"
    if view is None:
        return f"scored on the {scored} validation labels" if scored else None
    text = VIEWS[view].replace("fitted", "selected", 1) if "best_val" in name else VIEWS[view]
    calibrator = calibrator_of(name)
    if calibrator is not None:
        text = f"{CALIBRATOR_TITLES[calibrator]} {text}"
    if scored and scored != view:
        text = f"scored on the {scored} validation labels, " + text
    return text


def renamed_hint(name: str) -> str | None:
    """For a removed ambiguous key: a sentence naming the two keys that replace it."""
    if name not in RENAMED:
        return None
    noisy, clean = RENAMED[name]
    return (f"'{name}' is recorded once per validation view: {noisy} ({view_text(noisy)}) "
            f"or {clean} ({view_text(clean)})")

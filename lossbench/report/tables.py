"""Comparison tables: mean and spread over replicates (seeds, and the folds of a cross-validated dataset)
per (row, column) cell, best marked, ranks, paired tests."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lossbench.core.identity import is_housekeeping
from lossbench.report.stats import WILCOXON_MIN_PAIRS, paired_test

DIRECTIONS = ("max", "min", "abs")
_LOWER = ("nll", "brier", "ece", "mce", "memorization", "seconds", "wall_time", "loss", "error")
_HIGHER = ("acc", "throughput", "f1")
_FRACTIONS = ("acc", "ece", "mce", "gap", "confidence", "memorization")
MISSING = "?"
# A best cell is marked only when its test against the runner-up pairs at least this many seeds.
MIN_SEEDS = 3
TEST_NAMES = {"ttest": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test"}
# What tells one replicate of a cell from another: the seed, and the fold of a cross-validated dataset
# (``dataset.fold`` of a run whose ``dataset.folds`` > 1; a sweep over folds is one cross-validation).
REPLICATE_KEYS = ("seed", "dataset.fold")


def replicate_ids(frame: pd.DataFrame) -> tuple[pd.Series, str]:
    """(a replicate label per run, what the replicates are in words: "seeds" or "seeds and folds").

    The label is the seed, or "seed/fold" for a run of a cross-validated dataset, so that the folds of
    one seed count as several replicates and the paired test pairs runs of the same seed and fold.
    """
    seed = frame["seed"].map(_label) if "seed" in frame else pd.Series(MISSING, index=frame.index)
    if "dataset.fold" not in frame or "dataset.folds" not in frame:
        return seed, "seeds"
    folds = pd.to_numeric(frame["dataset.folds"], errors="coerce").fillna(0)
    crossed = folds > 1
    if not crossed.any():
        return seed, "seeds"
    label = seed.where(~crossed, seed + "/f" + frame["dataset.fold"].map(_label))
    return label, "seeds and folds" if crossed.all() else "seeds (and folds, where cross-validated)"


def metric_direction(metric: str) -> str | None:
    """Which way is better: "max" (accuracies), "min" (NLL, Brier, ECE, MCE, memorization,
    times), "abs" (closest to 0: the signed confidence gap), None (no better: temperature)."""
    name = metric.lower()
    if "gap" in name:
        return "abs"
    if any(token in name for token in _LOWER):
        return "min"
    if any(token in name for token in _HIGHER):
        return "max"
    return None


def metric_scale(metric: str) -> float:
    """100 for figures that are fractions (shown in %), else 1."""
    return 100.0 if any(token in metric.lower() for token in _FRACTIONS) else 1.0


def _label(value: object) -> str:
    """A key's value as a table label ("?" when a run does not record it)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _natural(value: str) -> tuple:
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def _value_order(frame: pd.DataFrame, key: str, labels: pd.Series) -> dict[str, tuple]:
    """Sort keys for a key's labels: noise by rate, families in catalogue order, else natural."""
    if key == "loss_family":
        from lossbench.losses import FAMILIES

        return {v: (FAMILIES.index(v) if v in FAMILIES else len(FAMILIES), v) for v in labels.unique()}
    if key == "noise" and "noise_rate" in frame:
        rates = pd.to_numeric(frame["noise_rate"], errors="coerce").groupby(labels).min()
        return {v: (0 if math.isfinite(rates.get(v, math.nan)) else 1,
                    rates.get(v, 0.0) if math.isfinite(rates.get(v, math.nan)) else 0.0, v)
                for v in labels.unique()}
    return {v: _natural(v) for v in labels.unique()}


@dataclass
class ComparisonTable:
    """One metric over (row, column) cells.

    ``cells`` is long: one line per cell that holds at least one run, indexed by
    the row keys then the column keys, with mean, std (ddof 1), n (runs with a
    value), runs (all runs, any status), best (the best mean of its column),
    runner_up (the row label), test (the paired test used), pairs (the seeds it
    paired), p_value, not_significant (the best is not significantly better than
    the runner-up), too_few_seeds (the test pairs fewer than MIN_SEEDS seeds: the
    best is not marked) and avg_rank (of the row). Only completed runs give values.
    ``setting``: the settings every run of the table shares beyond its rows and
    columns, when the report split the runs by them (report/settings.py).
    """

    metric: str
    direction: str | None
    row_keys: list[str]
    col_keys: list[str]
    cells: pd.DataFrame
    rows: list[tuple]
    cols: list[tuple]
    test: str
    alpha: float
    warnings: list[str] = field(default_factory=list)
    replicates: str = "seeds"   # what a cell's runs are replicates over (replicate_ids)
    setting: dict[str, str] = field(default_factory=dict)

    @property
    def setting_name(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.setting.items())

    @property
    def avg_rank(self) -> pd.Series:
        ranks = self.cells["avg_rank"].groupby(level=list(range(len(self.row_keys)))).first()
        return ranks.reindex(pd.MultiIndex.from_tuples(self.rows, names=self.row_keys))

    def cell(self, row: tuple, col: tuple) -> pd.Series | None:
        key = (*row, *col)
        return self.cells.loc[key] if key in self.cells.index else None


def build_table(
    frame: pd.DataFrame,
    metric: str,
    rows: list[str],
    cols: list[str],
    direction: str | None = None,
    alpha: float = 0.05,
    test: str = "auto",
) -> ComparisonTable:
    """Aggregate ``metric`` over replicates (seeds; and folds, ``replicate_ids``) for every (rows, cols)
    cell of the runs in ``frame``.

    When ``rows`` holds ``loss``, rows are grouped by ``loss_family`` first.
    The best cell per column follows ``direction`` (default: metric_direction);
    the best is compared with the runner-up by a paired test across replicates.
    """
    rows = list(rows)
    if "loss" in rows and "loss_family" not in rows and "loss_family" in frame:
        rows = ["loss_family", *rows]
    keys = rows + list(cols)
    missing = [k for k in [*keys, metric] if k not in frame.columns]
    if missing:
        raise KeyError(missing[0])
    direction = direction or metric_direction(metric)
    if direction is not None and direction not in DIRECTIONS:
        raise ValueError(f"unknown direction '{direction}'; known: {', '.join(DIRECTIONS)}")

    work = pd.DataFrame({k: frame[k].map(_label) for k in keys})
    completed = frame["status"] == "completed"
    work["_value"] = pd.to_numeric(frame[metric], errors="coerce").where(completed)
    work["_seed"], replicates = replicate_ids(frame)
    work["_seed"] = work["_seed"].where(work["_seed"] != MISSING)
    work["_overrides"] = frame["overrides"] if "overrides" in frame else ""
    grouped = work.groupby(keys, sort=False)
    cells = grouped["_value"].agg(mean="mean", std="std", n="count")
    cells["runs"] = grouped.size()
    cells = cells.sort_index()
    if direction == "max":
        cells["_score"] = -cells["mean"]
    elif direction == "min":
        cells["_score"] = cells["mean"]
    elif direction == "abs":
        cells["_score"] = cells["mean"].abs()
    else:
        cells["_score"] = np.nan

    orders = {k: _value_order(frame, k, work[k]) for k in keys}

    def sort_key(labels: tuple, names: list[str]) -> tuple:
        return tuple(orders[k][v] for k, v in zip(names, labels, strict=True))

    row_labels = sorted({idx[: len(rows)] for idx in cells.index}, key=lambda t: sort_key(t, rows))
    col_labels = sorted({idx[len(rows):] for idx in cells.index}, key=lambda t: sort_key(t, cols))

    cells["best"] = False
    cells["runner_up"] = None
    cells["test"] = None
    cells["pairs"] = pd.array([pd.NA] * len(cells), dtype="Int64")
    cells["p_value"] = np.nan
    cells["not_significant"] = None  # said of the best cell only
    cells["too_few_seeds"] = None
    shown_from = 1 if rows[0] == "loss_family" and len(rows) > 1 else 0  # the family adds nothing
    used_tests: set[str] = set()
    n_rows = len(rows)
    for col in col_labels:
        mask = [idx[n_rows:] == col for idx in cells.index]
        scores = cells.loc[mask, "_score"].dropna()
        if scores.empty:
            continue
        best_score = scores.min()
        best = scores.index[scores == best_score]
        cells.loc[best, "best"] = True
        rest = scores.drop(best)
        if len(best) > 1:
            cells.loc[best, "not_significant"] = True
            continue
        if rest.empty:
            continue
        runner = rest.idxmin()
        a = _per_seed(work, keys, best[0], direction)
        b = _per_seed(work, keys, runner, direction)
        seeds = a.index.intersection(b.index)
        p, used = paired_test(a[seeds].to_numpy(), b[seeds].to_numpy(), test)
        used_tests.add(used)
        cells.loc[best[0], "runner_up"] = " / ".join(runner[shown_from:n_rows])
        cells.loc[best[0], "test"] = TEST_NAMES[used]
        cells.loc[best[0], "pairs"] = len(seeds)
        cells.loc[best[0], "p_value"] = p
        cells.loc[best[0], "not_significant"] = not (p < alpha)
        cells.loc[best[0], "too_few_seeds"] = len(seeds) < MIN_SEEDS

    wide = cells["_score"].unstack(list(range(n_rows, len(keys)))) if cols else cells["_score"].to_frame()
    ranks = wide.rank(axis=0, method="average").mean(axis=1)
    cells["avg_rank"] = [ranks.get(idx[:n_rows] if n_rows > 1 else idx[0], np.nan) for idx in cells.index]
    cells = cells.drop(columns="_score")

    warnings = _mixing_warnings(work, keys)
    return ComparisonTable(
        metric=metric, direction=direction, row_keys=rows, col_keys=list(cols), cells=cells,
        rows=row_labels, cols=col_labels, test=_test_name(test, used_tests, replicates), alpha=alpha,
        warnings=warnings, replicates=replicates,
    )


def _per_seed(work: pd.DataFrame, keys: list[str], cell: tuple, direction: str | None) -> pd.Series:
    """The cell's values by seed (a seed repeated in the cell gives its mean; |x| for "abs")."""
    mask = np.logical_and.reduce([work[k] == v for k, v in zip(keys, cell, strict=True)])
    values = work.loc[mask & work["_value"].notna(), ["_seed", "_value"]]
    series = values.groupby("_seed")["_value"].mean()
    return series.abs() if direction == "abs" else series


def _test_name(test: str, used: set[str], replicates: str = "seeds") -> str:
    """How the best was compared with the runner-up, for the legend."""
    if len(used) == 1:
        return f"two-sided {TEST_NAMES[next(iter(used))]} across {replicates}"
    if test == "auto":
        unit = "seeds" if replicates == "seeds" else "pairs"
        return (f"two-sided paired t-test across {replicates} "
                f"(Wilcoxon signed-rank from {WILCOXON_MIN_PAIRS} {unit})")
    return f"two-sided {TEST_NAMES[test]} across {replicates}"


def _override_keys(text: object) -> dict[str, str]:
    if not isinstance(text, str):
        return {}
    pairs = (item.split("=", 1) for item in text.split() if "=" in item)
    return {k.lstrip("+~"): v for k, v in pairs}


def _mixing_warnings(work: pd.DataFrame, keys: list[str]) -> list[str]:
    """Say when a cell averages completed runs that differ in more than the seed, or repeat a seed."""
    ignored = {*keys, *REPLICATE_KEYS, "noise_seed"}
    varying: set[str] = set()
    repeated: list[str] = []
    done = work[work["_value"].notna()]
    for cell, group in done.groupby(keys, sort=False):
        overrides = [_override_keys(t) for t in group["_overrides"]]
        names = {k for o in overrides for k in o}
        for name in names - ignored:
            if is_housekeeping(name):
                continue
            if len({o.get(name) for o in overrides}) > 1:
                varying.add(name)
        if group["_seed"].notna().all() and group["_seed"].duplicated().any():
            repeated.append(" / ".join(cell))
    warnings = []
    if varying:
        warnings.append(
            f"some cells average runs that differ in {', '.join(sorted(varying))}; "
            f"add it to --rows or --cols, or pick one value with --where"
        )
    if repeated:
        warnings.append(
            f"{len(repeated)} cell(s) hold several runs with the same seed (e.g. {repeated[0]}); "
            f"the paired test uses their mean per seed (and fold)"
        )
    return warnings

"""Figures from run records (matplotlib, no display): metric vs noise rate, reliability, learning curves."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lossbench.report.collect import RunRecord, load_history
from lossbench.report.tables import _label, metric_direction, metric_scale

_FAMILY_STYLE = {"comp-sum": "-", "robust": "--", "calibration": ":"}
_FORMATS = ("png", "svg")


def _save(fig: Figure, out_dir: Path, name: str, dpi: int = 110) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in _FORMATS:
        path = out_dir / f"{name}.{fmt}"
        fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
        paths.append(path)
    return paths


def _line_label(row: pd.Series, keys: Sequence[str]) -> str:
    return " / ".join(_label(row.get(k)) for k in keys)


def _family_rank(family: object) -> int:
    """Families in catalogue order (comp-sum, robust, calibration), unknown ones last."""
    from lossbench.losses import FAMILIES

    return FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)


def _style(family: object) -> str:
    return _FAMILY_STYLE.get(family, "-.") if isinstance(family, str) else "-."


def plot_metric_vs_noise(frame: pd.DataFrame, metric: str, out_dir: Path, lines: Sequence[str] = ("loss",),
                         ) -> list[Path]:
    """``metric`` (mean ± std over seeds) against the noise rate, one line per ``lines`` label.

    One panel per dataset and noise kind; clean runs (rate 0) appear in every panel.
    """
    done = frame[(frame["status"] == "completed") & frame[metric].notna()].copy()
    if done.empty:
        return []
    done["_value"] = pd.to_numeric(done[metric], errors="coerce") * metric_scale(metric)
    done["_rate"] = pd.to_numeric(done.get("noise_rate", 0.0), errors="coerce").fillna(0.0)
    kinds = done.get("noise_kind", pd.Series("noise", index=done.index)).fillna("noise")
    done["_kind"] = kinds.astype(str)
    done["_dataset"] = done.get("dataset", pd.Series("", index=done.index)).map(_label)
    done["_line"] = done.apply(lambda r: _line_label(r, lines), axis=1)
    noisy_kinds = sorted(set(done["_kind"]) - {"clean"}) or ["clean"]
    datasets = sorted(set(done["_dataset"]))
    panels = [(d, k) for d in datasets for k in noisy_kinds]
    fig = Figure(figsize=(4.6 * len(panels), 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    family_of = done.groupby("_line")["loss_family"].first()
    line_order = sorted(family_of.index, key=lambda s: (_family_rank(family_of[s]), s))
    for ax, (dataset, kind) in zip(axes, panels, strict=True):
        part = done[(done["_dataset"] == dataset) & done["_kind"].isin([kind, "clean"])]
        for line in line_order:
            points = part[part["_line"] == line].groupby("_rate")["_value"].agg(["mean", "std", "count"])
            if points.empty:
                continue
            family = part.loc[part["_line"] == line, "loss_family"].iloc[0]
            ax.errorbar(points.index * 100, points["mean"], yerr=points["std"].fillna(0.0), label=line,
                        linestyle=_style(family), marker="o", markersize=4, capsize=3)
        title = " ".join(t for t in (dataset, kind if kind != "clean" else "") if t)
        ax.set_title(title or metric)
        ax.set_xlabel("noise rate (%)")
        ax.set_ylabel(f"{metric}{' (%)' if metric_scale(metric) == 100 else ''}")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=8, title=" / ".join(lines), title_fontsize=8)
    direction = metric_direction(metric)
    if direction is not None:
        better = {"max": "higher", "min": "lower", "abs": "closer to 0"}[direction]
        from lossbench.metrics.views import view_text

        view = view_text(metric)
        fig.suptitle(f"{metric} vs noise rate (mean ± std over seeds; {better} is better)"
                     + (f"\n{metric}: {view}" if view else ""), fontsize=10)
    return _save(fig, Path(out_dir), f"{metric}_vs_noise")


def _merged_bins(rel: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(confidence, accuracy, count) per displayed bin; the bin of confidence 1 joins the last."""
    count = np.asarray(rel["count"], dtype=float)
    conf = np.array([c if c is not None else 0.0 for c in rel["confidence"]]) * count
    acc = np.array([a if a is not None else 0.0 for a in rel["accuracy"]]) * count
    n_bins = int(rel["n_bins"])
    if len(count) > n_bins:
        count[n_bins - 1] += count[n_bins:].sum()
        conf[n_bins - 1] += conf[n_bins:].sum()
        acc[n_bins - 1] += acc[n_bins:].sum()
        count, conf, acc = count[:n_bins], conf[:n_bins], acc[:n_bins]
    with np.errstate(invalid="ignore", divide="ignore"):
        return conf / count, acc / count, count


def _draw_reliability(ax, rel: dict, title: str) -> None:
    conf, acc, count = _merged_bins(rel)
    n_bins = len(count)
    width = 1.0 / n_bins
    lefts = np.arange(n_bins) * width
    full = count > 0
    ax.bar(lefts[full], acc[full], width=width, align="edge", color="tab:blue", edgecolor="black",
           linewidth=0.5, label="accuracy")
    ax.bar(lefts[full], (conf - acc)[full], bottom=acc[full], width=width, align="edge", color="tab:red",
           alpha=0.25, edgecolor="tab:red", linewidth=0.5, hatch="//", label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=9)
    share = ax.twinx()
    share.plot(lefts + width / 2, count / max(count.sum(), 1), color="black", linewidth=0.8, alpha=0.6)
    share.set_ylim(0, 1)
    share.set_yticks([])


# After-calibration panels of a run's reliability figure: (view, title); the oracle first, as the
# default column of calibration tables (README, "Calibration under label noise").
_TS_PANELS = (("clean", "T fitted on clean val labels (oracle)"),
              ("noisy", "T fitted on noisy val labels (practitioner)"))


def plot_reliability(records: Sequence[RunRecord], out_dir: Path, name: str = "reliability") -> list[Path]:
    """Reliability diagrams of the test split, one row per run: before temperature scaling, and after
    it with T fitted on the clean, then on the noisy validation labels."""
    usable = [r for r in records if isinstance(r.summary.get("test_reliability"), dict)]
    if not usable:
        return []
    fig = Figure(figsize=(10.8, 3.3 * len(usable)), layout="constrained")
    axes = fig.subplots(len(usable), 1 + len(_TS_PANELS), squeeze=False)
    for row, record in zip(axes, usable, strict=True):
        s = record.summary
        who = " ".join(f"{s[k]}" for k in ("loss", "noise", "dataset") if s.get(k)) + f" seed {s.get('seed')}"
        before = f"{who}\nbefore scaling: ECE {_pct(s.get('test_ece'))}"
        _draw_reliability(row[0], s["test_reliability"], before)
        for ax, (view, title) in zip(row[1:], _TS_PANELS, strict=True):
            bins, t = s.get(f"test_reliability_ts_{view}"), s.get(f"temperature_{view}")
            if not isinstance(bins, dict):
                ax.set_axis_off()
                continue
            label = f"T = {t:.2f}" if isinstance(t, (int, float)) else "T = ?"
            _draw_reliability(ax, bins, f"{title}, {label}\nECE {_pct(s.get(f'test_ece_ts_{view}'))}")
    axes[0][0].legend(fontsize=7, loc="upper left")
    return _save(fig, Path(out_dir), name, dpi=90)


def _pct(value: object) -> str:
    return f"{100 * value:.2f}%" if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def plot_learning_curves(frame: pd.DataFrame, records: Sequence[RunRecord], out_dir: Path,
                         lines: Sequence[str] = ("loss",), panels: Sequence[str] = ("noise",),
                         series: Sequence[str] = ("test_acc", "memorization")) -> list[Path]:
    """Per-epoch ``series`` (mean over seeds, band = ± std) against epoch; one line per ``lines``
    label, one column of panels per ``panels`` label. Histories come from metrics.jsonl."""
    curves = []
    for i, row in frame.iterrows():
        if row["status"] not in ("completed", "diverged"):
            continue
        history = pd.DataFrame(load_history(records[i]))
        if history.empty or "epoch" not in history:
            continue
        history["_line"] = _line_label(row, lines)
        history["_panel"] = _line_label(row, panels)
        history["_family"] = row.get("loss_family")
        curves.append(history)
    if not curves:
        return []
    data = pd.concat(curves, ignore_index=True)
    panel_order = list(dict.fromkeys(
        frame.sort_values("noise_rate").apply(lambda r: _line_label(r, panels), axis=1)
        if "noise_rate" in frame else data["_panel"]))
    panel_order = [p for p in panel_order if p in set(data["_panel"])]
    series = [s for s in series if s in data]
    fig = Figure(figsize=(4.0 * len(panel_order), 2.9 * len(series)), layout="constrained")
    axes = fig.subplots(len(series), len(panel_order), squeeze=False, sharex=True)
    family_of = data.groupby("_line")["_family"].first()
    line_order = sorted(family_of.index, key=lambda s: (_family_rank(family_of[s]), s))
    colours = {line: f"C{i % 10}" for i, line in enumerate(line_order)}
    for j, panel in enumerate(panel_order):
        part = data[data["_panel"] == panel]
        for i, name in enumerate(series):
            ax = axes[i][j]
            scale = metric_scale(name)
            for line in line_order:
                sub = part[part["_line"] == line]
                if sub.empty:
                    continue
                stats = sub.groupby("epoch")[name].agg(["mean", "std"]) * scale
                epochs = stats.index + 1
                family = sub["_family"].iloc[0]
                ax.plot(epochs, stats["mean"], label=line, color=colours[line], linestyle=_style(family))
                ax.fill_between(epochs, stats["mean"] - stats["std"].fillna(0), stats["mean"]
                                + stats["std"].fillna(0), color=colours[line], alpha=0.15, linewidth=0)
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(panel)
            if j == 0:
                ax.set_ylabel(f"{name}{' (%)' if scale == 100 else ''}")
            if i == len(series) - 1:
                ax.set_xlabel("epoch")
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0][-1].legend(fontsize=8, title=" / ".join(lines), title_fontsize=8)
    return _save(fig, Path(out_dir), "learning_curves")

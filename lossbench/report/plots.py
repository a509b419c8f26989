"""Figures from run records (matplotlib, no display): metric vs noise rate, reliability, learning curves."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lossbench.core.io import make_folders, write_with_atomic
from lossbench.report.collect import RunRecord, load_history
from lossbench.report.escape import file_stem, printable
from lossbench.report.tables import _label, metric_direction, metric_scale

_FAMILY_STYLE = {"comp-sum": "-", "robust": "--", "calibration": ":"}
_FORMATS = ("png", "svg")
# Lines at one noise rate are set this share of the rate axis apart: their error bars stand side by side.
DODGE = 0.012
_LABEL_CHARS = 60
# Text from the files is drawn as written: "$...$" in a loss name is not mathtext.
_plain_text = mpl.rc_context({"text.parse_math": False})


def _short(text: object) -> str:
    """A label as drawn: one visible line, at most 60 characters."""
    return printable(text, _LABEL_CHARS)


def _save(fig: Figure, out_dir: Path, name: str, dpi: int = 110) -> list[Path]:
    """Write ``name``.png and .svg into ``out_dir``; the name is reduced to a safe stem first, so
    whatever a metric is called, the files land in ``out_dir`` and nowhere else."""
    out_dir = make_folders(out_dir)
    stem = file_stem(name)
    paths = []
    for fmt in _FORMATS:
        path = out_dir / f"{stem}.{fmt}"
        if path.resolve().parent != out_dir.resolve():
            raise ValueError(f"refusing to write {printable(path)} outside {printable(out_dir)}")
        metadata = {"Date": None} if fmt == "svg" else None
        with rc_context({"svg.fonttype": "none"}):  # SVG text stays text: editable, searchable
            write_with_atomic(path, lambda f, fmt=fmt, metadata=metadata: fig.savefig(  # whole or not at all
                f, format=fmt, dpi=dpi, bbox_inches="tight", metadata=metadata))
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


@_plain_text
def plot_metric_vs_noise(frame: pd.DataFrame, metric: str, out_dir: Path, lines: Sequence[str] = ("loss",),
                         ) -> list[Path]:
    """``metric`` (mean ± std over seeds) against the noise rate, one line per ``lines`` label, in one
    colour in every panel; lines are set a little apart at each rate (ticks at the rates themselves).

    One panel per dataset and noise kind; clean runs (rate 0) appear in every panel.
    """
    done = frame[(frame["status"] == "completed") & frame[metric].notna()].copy()
    if done.empty:
        return []
    done["_value"] = pd.to_numeric(done[metric], errors="coerce") * metric_scale(metric)
    done = done[np.isfinite(done["_value"])]
    if done.empty:
        return []
    done["_rate"] = pd.to_numeric(done.get("noise_rate", 0.0), errors="coerce").fillna(0.0)
    kinds = done.get("noise_kind", pd.Series("noise", index=done.index)).fillna("noise")
    done["_kind"] = kinds.map(_label)
    done["_dataset"] = done.get("dataset", pd.Series("", index=done.index)).map(_label)
    done["_line"] = done.apply(lambda r: _line_label(r, lines), axis=1)
    noisy_kinds = sorted(set(done["_kind"]) - {"clean"}) or ["clean"]
    datasets = sorted(set(done["_dataset"]))
    panels = [(d, k) for d in datasets for k in noisy_kinds]
    fig = Figure(figsize=(4.6 * len(panels), 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    family_of = done.groupby("_line")["loss_family"].first()
    line_order = sorted(family_of.index, key=lambda s: (_family_rank(family_of[s]), s))
    colours = {line: f"C{i % 10}" for i, line in enumerate(line_order)}  # one colour a line, every panel
    for ax, (dataset, kind) in zip(axes, panels, strict=True):
        part = done[(done["_dataset"] == dataset) & done["_kind"].isin([kind, "clean"])]
        drawn = [line for line in line_order if (part["_line"] == line).any()]
        rates = sorted(set(part["_rate"] * 100))
        step = DODGE * max(max(rates) - min(rates), 10.0)  # lines side by side at one rate
        for i, line in enumerate(drawn):
            points = part[part["_line"] == line].groupby("_rate")["_value"].agg(["mean", "std", "count"])
            family = part.loc[part["_line"] == line, "loss_family"].iloc[0]
            ax.errorbar(points.index * 100 + (i - (len(drawn) - 1) / 2) * step, points["mean"],
                        yerr=points["std"].fillna(0.0), label=_short(line), color=colours[line],
                        linestyle=_style(family), marker="o", markersize=4, capsize=3)
        ax.set_xticks(rates)
        margin = max(0.08 * (max(rates) - min(rates)), 5.0)
        ax.set_xlim(min(rates) - margin, max(rates) + margin)
        title = " ".join(t for t in (dataset, kind if kind != "clean" else "") if t)
        ax.set_title(_short(title or metric))
        ax.set_xlabel("noise rate (%)")
        ax.set_ylabel(f"{_short(metric)}{' (%)' if metric_scale(metric) == 100 else ''}")
        ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colours[line], linestyle=_style(family_of[line]), marker="o",
                      markersize=4, label=_short(line)) for line in line_order]  # whichever panel has it
    axes[-1].legend(handles=handles, fontsize=8, title=_short(" / ".join(lines)), title_fontsize=8)
    direction = metric_direction(metric)
    if direction is not None:
        better = {"max": "higher", "min": "lower", "abs": "closer to 0"}[direction]
        from lossbench.metrics.views import view_text

        view = view_text(metric)
        fig.suptitle(f"{_short(metric)} vs noise rate (mean ± std over seeds; {better} is better)"
                     + (f"\n{_short(metric)}: {view}" if view else ""), fontsize=10)
    return _save(fig, Path(out_dir), f"{metric}_vs_noise")


def usable_bins(rel: object) -> bool:
    """Whether ``rel`` holds reliability bins that can be drawn: ``n_bins`` >= 1 and lists ``count``
    (finite, >= 0), ``confidence`` and ``accuracy`` (numbers or null) of one length, at least n_bins."""
    if not isinstance(rel, dict):
        return False
    n_bins, count = rel.get("n_bins"), rel.get("count")
    conf, acc = rel.get("confidence"), rel.get("accuracy")
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        return False
    if not all(isinstance(v, list) for v in (count, conf, acc)) or not len(count) == len(conf) == len(acc):
        return False

    def number(x: object) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    return len(count) >= n_bins and all(number(c) and c >= 0 for c in count) \
        and all(x is None or number(x) for x in (*conf, *acc))


FEW_SAMPLES = 10  # bins with fewer test samples are drawn faded
SMOOTH_MIN_DENSITY = 0.02  # the smoothed curve is drawn where the confidence density is >= 2% of its peak
_OVER, _UNDER, _BARS, _CURVE = "tab:red", "tab:orange", "tab:blue", "black"


def _tint(colour: str, strength: float) -> tuple[float, float, float, float]:
    """``colour`` at ``strength`` over white, as an opaque colour: a box drawn in it looks the same over
    an accuracy bar as in the legend (a translucent one would mix with what lies beneath)."""
    from matplotlib.colors import to_rgb

    r, g, b = (strength * c + 1 - strength for c in to_rgb(colour))
    return (r, g, b, 1.0)


# (label, face, edge, hatch) of each kind of bar a diagram draws; the legend uses the same.
_BAR_STYLES = {
    "accuracy per bin": (_tint(_BARS, 0.85), "black", ""),
    f"bin with < {FEW_SAMPLES} samples": (_tint(_BARS, 0.25), "black", ""),
    "gap, over-confident (red)": (_tint(_OVER, 0.4), _OVER, "//"),
    "gap, under-confident (orange)": (_tint(_UNDER, 0.4), _UNDER, "//"),
}
_STATES_ORDER = ("ts", "vs", "ms", "dir", "ca")
_VIEW_WORDS = {"clean": "fitted on clean val labels (oracle)",
               "noisy": "fitted on noisy val labels (practitioner)"}
RELIABILITY_LEGEND = (
    f"Bars: accuracy per confidence bin (15 equal-width bins; the bin of confidence 1 joins the last). "
    f"Shaded box: the gap between a bin's accuracy and its mean confidence, red where over-confident "
    f"(confidence above accuracy), orange where under-confident. Faded bars: bins with fewer than "
    f"{FEW_SAMPLES} test samples. Black line: relplot's smoothed reliability curve at SmoothECE's bandwidth "
    f"sigma (when relplot is installed), drawn where the density of confidences is at least "
    f"{SMOOTH_MIN_DENSITY:.0%} of its peak. Dashed: perfect calibration. Lower panel: share of test "
    f"samples per bin."
)


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


def pool_reliability(rels: Sequence[dict]) -> dict | None:
    """Reliability bins of several runs (e.g. the seeds of one loss) pooled: counts and sums add up, so
    the pooled diagram is that of all their test samples together; smoothed curves are averaged
    (weighted by each run's density) and keep the mean bandwidth."""
    rels = [r for r in rels if usable_bins(r)]
    if not rels:
        return None
    n_bins = int(rels[0]["n_bins"])
    size = max(len(r["count"]) for r in rels)
    count, conf, acc = np.zeros(size), np.zeros(size), np.zeros(size)
    for r in rels:
        k = np.asarray(r["count"], dtype=float)
        count[: len(k)] += k
        conf[: len(k)] += np.array([c or 0.0 for c in r["confidence"]]) * k
        acc[: len(k)] += np.array([a or 0.0 for a in r["accuracy"]]) * k
    pooled = {"n_bins": n_bins, "count": count.astype(int).tolist(),
              "confidence": [c / k if k else None for c, k in zip(conf, count, strict=True)],
              "accuracy": [a / k if k else None for a, k in zip(acc, count, strict=True)],
              "runs": len(rels)}
    smooth = [r["smooth"] for r in rels if isinstance(r.get("smooth"), dict)]
    if smooth and len({len(m["mu"]) for m in smooth}) == 1:
        density = np.array([m["density"] for m in smooth], dtype=float)
        mu = np.array([m["mu"] for m in smooth], dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            weighted = (mu * density).sum(0) / density.sum(0)
        pooled["smooth"] = {"sigma": float(np.mean([m["sigma"] for m in smooth])),
                            "mu": np.nan_to_num(weighted, nan=0.0).tolist(),
                            "density": density.mean(0).tolist()}
    return pooled


def _draw_reliability(ax, hist, rel: dict, title: str, labels: bool = True) -> None:
    """One reliability diagram on ``ax`` and its confidence histogram on ``hist`` (see RELIABILITY_LEGEND)."""
    conf, acc, count = _merged_bins(rel)
    n_bins = len(count)
    width = 1.0 / n_bins
    lefts = np.arange(n_bins) * width
    seen = count > 0
    full, few = count >= FEW_SAMPLES, seen & (count < FEW_SAMPLES)
    over, under = seen & (conf > acc), seen & (conf <= acc)
    gap_low, gap = np.minimum(conf, acc), np.abs(conf - acc)
    for mask, heights, bottoms, label, line in (
            (full, acc, 0.0, "accuracy per bin", 0.4),
            (few, acc, 0.0, f"bin with < {FEW_SAMPLES} samples", 0.4),
            (over, gap, gap_low, "gap, over-confident (red)", 0.6),
            (under, gap, gap_low, "gap, under-confident (orange)", 0.6)):
        if mask.any():
            face, edge, hatch = _BAR_STYLES[label]
            bottom = bottoms[mask] if isinstance(bottoms, np.ndarray) else bottoms
            ax.bar(lefts[mask], heights[mask], bottom=bottom, width=width, align="edge", color=face,
                   edgecolor=edge, linewidth=line, hatch=hatch or None, label=label if labels else None)
    smooth = rel.get("smooth")
    if isinstance(smooth, dict) and smooth.get("mu"):
        mu, density = np.asarray(smooth["mu"], dtype=float), np.asarray(smooth["density"], dtype=float)
        mesh = np.linspace(0, 1, len(mu))
        # a kernel regression says nothing where no test sample lies: only over bins with samples, and
        # where the density of confidences is not negligible
        in_bin = np.minimum((mesh * n_bins).astype(int), n_bins - 1)
        mu = np.where(seen[in_bin] & (density >= SMOOTH_MIN_DENSITY * density.max()), mu, np.nan)
        ax.plot(mesh, mu, color=_CURVE, linewidth=1.3, label="smoothed curve (relplot)" if labels else None)
        ax.text(0.03, 0.93, f"σ = {smooth['sigma']:.3f}", fontsize=6, transform=ax.transAxes)
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=0.9,
            label="perfect calibration" if labels else None)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy", fontsize=8)
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=7, labelbottom=False)
    total = max(count.sum(), 1)
    hist.bar(lefts, count / total, width=width, align="edge", color="0.55", edgecolor="black", linewidth=0.3)
    hist.set_xlim(0, 1)
    hist.set_ylim(0, max(1e-9, (count / total).max()) * 1.1)
    hist.set_xlabel("confidence", fontsize=8)
    hist.set_ylabel("share", fontsize=7)
    hist.tick_params(labelsize=6)


def _states(summary: dict) -> list[str]:
    """Calibrator keys with diagrams in ``summary``, in catalogue order."""
    return [k for k in _STATES_ORDER if any(usable_bins(summary.get(f"test_reliability_{k}_{v}"))
                                            for v in _VIEW_WORDS)]


def _state_title(summary: dict, key: str, view: str) -> str:
    from lossbench.metrics.views import CALIBRATOR_TITLES

    extra = ""
    t = summary.get(f"temperature_{view}")
    if key == "ts" and isinstance(t, (int, float)):
        extra = f", T = {t:.2f}"
    ece, smece = summary.get(f"test_ece_{key}_{view}"), summary.get(f"test_smece_{key}_{view}")
    name = CALIBRATOR_TITLES.get(key, key)
    return f"{name}{extra}\n{_VIEW_WORDS[view]}\nECE {_pct(ece)}, smECE {_pct(smece)}"


def _grid(fig: Figure, rows: int, cols: int):
    """Axes pairs (diagram, histogram) for a rows x cols layout: returns axes[r][c] = (diagram, hist)."""
    ax = fig.subplots(2 * rows, cols, squeeze=False, gridspec_kw={"height_ratios": [3, 1] * rows})
    return [[(ax[2 * r][c], ax[2 * r + 1][c]) for c in range(cols)] for r in range(rows)]


@_plain_text
def plot_reliability(records: Sequence[RunRecord], out_dir: Path, name: str = "reliability",
                     caption: str | None = None) -> list[Path]:
    """Reliability diagrams of the test split, one row per run: before calibration, then after each
    calibrator fitted on each validation view (clean: oracle; noisy: practitioner) that some run
    recorded (runs without any calibrator: side by side, up to 4 a row). ``caption`` says how the runs
    were chosen; it is printed under the figure with the legend's wording."""
    usable = [r for r in records if usable_bins(r.summary.get("test_reliability"))]
    if not usable:
        return []
    columns = [state for state in grid_states(usable) if state]  # <calibrator>_<view>
    panels = [(record, state) for record in usable for state in ("", *columns)]
    width = 1 + len(columns) if columns else min(4, len(usable))
    height = -(-len(panels) // width)
    fig = Figure(figsize=(2.7 * width, 3.5 * height + 0.8), layout="constrained")
    axes = _grid(fig, height, width)
    for i, (record, state) in enumerate(panels):
        ax, hist = axes[i // width][i % width]
        s = record.summary
        if not state:
            who = _short(" ".join(f"{s[k]}" for k in ("loss", "noise", "dataset") if s.get(k))
                         + f" seed {s.get('seed')}")
            _draw_reliability(ax, hist, s["test_reliability"],
                              f"{who}\nbefore calibration\nECE {_pct(s.get('test_ece'))}, "
                              f"smECE {_pct(s.get('test_smece'))}", labels=i == 0)
        elif usable_bins(s.get(f"test_reliability_{state}")):
            key, view = state.rsplit("_", 1)
            _draw_reliability(ax, hist, s[f"test_reliability_{state}"], _state_title(s, key, view),
                              labels=False)
        else:  # this run lacks a calibrator another run has
            ax.set_axis_off()
            hist.set_axis_off()
    for i in range(len(panels), height * width):  # the rest of the last row
        for ax in axes[i // width][i % width]:
            ax.set_axis_off()
    _legend_and_caption(fig, axes[0][0][0], [caption, RELIABILITY_LEGEND])
    return _save(fig, Path(out_dir), name, dpi=72)


def _legend_handles() -> list:
    """Every element a reliability diagram can draw, whether or not the first panel has it."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    bars = [Patch(facecolor=face, edgecolor=edge, hatch=hatch or None, label=label)
            for label, (face, edge, hatch) in _BAR_STYLES.items()]
    return [
        *bars,
        Line2D([], [], color=_CURVE, linewidth=1.3, label="smoothed curve (relplot)"),
        Line2D([], [], color="gray", linestyle="--", linewidth=0.9, label="perfect calibration"),
    ]


def _legend_and_caption(fig: Figure, ax, texts: Sequence[str | None]) -> None:
    """The diagrams' legend just under the figure, and the caption under the legend, wrapped to the
    figure's width (a wider caption would widen the page around it)."""
    fig.legend(handles=_legend_handles(), loc="upper center", bbox_to_anchor=(0.5, 0.0),
               bbox_transform=fig.transFigure, ncol=3 if fig.get_figwidth() >= 7 else 2, fontsize=7)
    height = fig.get_figheight()
    # about 19 characters of 7-point text per inch
    width = max(40, int(fig.get_figwidth() * 19))
    fig.text(0.0, -0.75 / height, "\n".join(_wrap(t, width) for t in texts if t), fontsize=7, ha="left",
             va="top", transform=fig.transFigure)


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def grid_states(records: Sequence[RunRecord]) -> list[str]:
    """The grid figures --plots draws: "" (before calibration), then <calibrator>_<view> for every
    calibrator some run recorded, clean (the oracle) before noisy."""
    seen = [""]
    for key in _STATES_ORDER:
        for view in _VIEW_WORDS:
            if any(usable_bins(r.summary.get(f"test_reliability_{key}_{view}")) for r in records):
                seen.append(f"{key}_{view}")
    return seen


@_plain_text
def plot_reliability_grid(frame: pd.DataFrame, records: Sequence[RunRecord], out_dir: Path,
                          rows: Sequence[str] = ("loss",), cols: Sequence[str] = ("noise",),
                          state: str = "") -> list[Path]:
    """A grid of reliability diagrams: one row per ``rows`` label (losses), one column per ``cols``
    label (noise settings), each pooling every completed run of its cell (all seeds; see
    pool_reliability). ``state``: "" before calibration, else "<calibrator>_<view>" (e.g. "ts_clean")."""
    key = f"test_reliability_{state}" if state else "test_reliability"
    done = [(i, row) for i, row in frame.iterrows() if row.get("status") == "completed"
            and usable_bins(records[i].summary.get(key))]
    if not done:
        return []
    cells: dict[tuple[str, str], list[dict]] = {}
    order_rows, order_cols = [], []
    by_rank = sorted(done, key=lambda ir: (_family_rank(ir[1].get("loss_family")), _line_label(ir[1], rows)))
    for i, row in by_rank:
        r, c = _line_label(row, rows), _line_label(row, cols)
        cells.setdefault((r, c), []).append(records[i].summary[key])
        if r not in order_rows:
            order_rows.append(r)
    rates = {}
    for _, row in done:
        rate = pd.to_numeric(pd.Series([row.get("noise_rate")]), errors="coerce").fillna(0.0).iloc[0]
        rates.setdefault(_line_label(row, cols), rate)
    order_cols = sorted(rates, key=lambda c: (rates[c], c))
    fig = Figure(figsize=(2.6 * len(order_cols), 3.0 * len(order_rows) + 1.0), layout="constrained")
    axes = _grid(fig, len(order_rows), len(order_cols))
    metric = f"test_ece_{state}" if state else "test_ece"
    first = None
    for a, r in enumerate(order_rows):
        for b, c in enumerate(order_cols):
            pooled = pool_reliability(cells.get((r, c), []))
            if pooled is None:
                for ax in axes[a][b]:
                    ax.set_axis_off()
                continue
            values = [records[i].summary.get(metric) for i, row in done
                      if _line_label(row, rows) == r and _line_label(row, cols) == c]
            values = [v for v in values if isinstance(v, (int, float))]
            ece = f"; ECE {_pct(float(np.mean(values)))} (mean of {len(values)})" if values else ""
            _draw_reliability(*axes[a][b], pooled, f"{r} | {c}\n{pooled['runs']} runs pooled{ece}",
                              labels=first is None)
            first = first or axes[a][b][0]
    from lossbench.metrics.views import CALIBRATOR_TITLES

    what = "before calibration" if not state else (
        f"after {CALIBRATOR_TITLES.get(state.rsplit('_', 1)[0], state)} "
        f"{_VIEW_WORDS.get(state.rsplit('_', 1)[-1], '')}")
    fig.suptitle(f"Reliability on the test set, {what}", fontsize=10)
    caption = (f"Rows: {' / '.join(rows)}; columns: {' / '.join(cols)}. Each panel pools every completed run "
               "of its cell (all seeds): bin counts and sums are added, smoothed curves averaged; no run is "
               "selected by any metric.")
    _legend_and_caption(fig, first, [caption, RELIABILITY_LEGEND])
    return _save(fig, Path(out_dir), f"reliability_grid_{state}" if state else "reliability_grid", dpi=72)


def _pct(value: object) -> str:
    return f"{100 * value:.2f}%" if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


@_plain_text
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
        history["epoch"] = pd.to_numeric(history["epoch"], errors="coerce")
        history = history[history["epoch"].notna()]
        for name in series:
            if name in history:
                history[name] = pd.to_numeric(history[name], errors="coerce")
        history["_line"] = _line_label(row, lines)
        history["_panel"] = _line_label(row, panels)
        history["_family"] = row.get("loss_family")
        curves.append(history)
    if not curves:
        return []
    data = pd.concat(curves, ignore_index=True)
    by_rate = frame.assign(_rate=pd.to_numeric(frame["noise_rate"], errors="coerce")).sort_values("_rate") \
        if "noise_rate" in frame else None
    panel_order = list(dict.fromkeys(
        by_rate.apply(lambda r: _line_label(r, panels), axis=1) if by_rate is not None else data["_panel"]))
    series = [s for s in series if s in data and data[s].notna().any()]
    drawn = set(data.loc[data[series].notna().any(axis=1), "_panel"]) if series else set()
    panel_order = [p for p in panel_order if p in drawn]  # no panel without a value to draw
    if not series or not panel_order:
        return []
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
                epochs = stats.index  # numbered from 1 in metrics.jsonl
                family = sub["_family"].iloc[0]
                ax.plot(epochs, stats["mean"], label=_short(line), color=colours[line],
                        linestyle=_style(family),
                        marker="o" if stats["mean"].notna().sum() == 1 else None)  # one epoch: a dot
                ax.fill_between(epochs, stats["mean"] - stats["std"].fillna(0), stats["mean"]
                                + stats["std"].fillna(0), color=colours[line], alpha=0.15, linewidth=0)
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(_short(panel))
            if j == 0:
                ax.set_ylabel(f"{_short(name)}{' (%)' if scale == 100 else ''}")
            if i == len(series) - 1:
                ax.set_xlabel("epoch")
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colours[line], linestyle=_style(family_of[line]), label=_short(line))
               for line in line_order]  # every line, whichever panel has it
    axes[0][-1].legend(handles=handles, fontsize=8, title=_short(" / ".join(lines)), title_fontsize=8)
    return _save(fig, Path(out_dir), "learning_curves")

"""What the figures draw, read back from the matplotlib figures themselves: epochs where they were
logged, legend colours equal to what is drawn, the smoothed curve only over bins with samples, no
empty panel, error bars side by side where they would overlap."""

from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from lossbench.report import plots
from lossbench.report.collect import local_records, runs_frame


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions save (they are still written too)."""
    saved = []
    save = plots._save

    def keep(fig, out_dir, name, dpi=110):
        saved.append(fig)
        return save(fig, out_dir, name, dpi)

    monkeypatch.setattr(plots, "_save", keep)
    return saved


def bins(acc: float, smooth: bool = True) -> dict:
    """15 bins, samples only from confidence 0.8 on; the smoothed curve spans the whole mesh."""
    count = [0] * 12 + [30, 40, 50, 5]
    rel = {"n_bins": 15, "count": count, "confidence": [None] * 12 + [0.83, 0.9, 0.97, 1.0],
           "accuracy": [None] * 12 + [acc, 0.95, 0.9, 1.0]}
    if smooth:
        mesh = np.linspace(0, 1, 101)
        density = np.exp(-(((mesh - 0.9) / 0.3) ** 2))
        rel["smooth"] = {"sigma": 0.05, "mu": mesh.tolist(), "density": density.tolist()}
    return rel


def test_learning_curves_start_at_the_first_logged_epoch(make_run, tmp_path, figures):
    for seed in range(2):
        make_run(str(seed), "ce", "sym20", seed, test_acc=0.8,
                 history=[{"epoch": e, "test_acc": 0.5 + e / 10, "memorization": 0.0} for e in (1, 2, 3)])
    records = local_records([tmp_path / "sweep"])
    plots.plot_learning_curves(runs_frame(records), records, tmp_path / "fig")
    [ax] = [a for a in figures[0].axes if a.get_ylabel().startswith("test_acc")]
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3]  # epochs are numbered from 1 already
    assert list(ax.lines[0].get_ydata()) == pytest.approx([60, 70, 80])


def test_gap_boxes_are_drawn_in_their_legend_colours():
    fig = Figure()
    ax, hist = fig.subplots(2, 1)
    rel = bins(0.7)  # bin 12: confidence .83 > accuracy .7 (over); bin 14: .97 > .9; bin 13: .9 < .95 (under)
    plots._draw_reliability(ax, hist, rel, "t")
    legend = {h.get_label(): h for h in plots._legend_handles()}
    drawn = {c.get_label(): c.patches for c in ax.containers}
    for label in ("gap, over-confident (red)", "gap, under-confident (orange)", "accuracy per bin"):
        assert drawn[label], label
        for box in drawn[label]:
            # opaque: the colour seen is the colour drawn, whatever lies beneath (the accuracy bar)
            assert box.get_facecolor() == pytest.approx(legend[label].get_facecolor())
            assert box.get_facecolor()[3] == 1.0
            assert box.get_edgecolor() == pytest.approx(legend[label].get_edgecolor())
            assert box.get_hatch() == legend[label].get_hatch()


def test_the_smoothed_curve_is_drawn_only_over_bins_with_samples():
    fig = Figure()
    ax, hist = fig.subplots(2, 1)
    plots._draw_reliability(ax, hist, bins(0.8), "t")
    [curve] = [line for line in ax.lines if line.get_label() == "smoothed curve (relplot)"]
    x, y = np.asarray(curve.get_xdata()), np.asarray(curve.get_ydata(), dtype=float)
    drawn = x[np.isfinite(y)]
    assert drawn.min() >= 12 / 15 - 1e-9 and drawn.max() <= 1.0 and len(drawn) > 10


def test_reliability_page_has_no_empty_panel_and_is_not_a_tall_strip(make_run, tmp_path, figures):
    for seed, loss in enumerate(("ce", "gce", "focal")):
        make_run(str(seed), loss, "sym60", 0, test_acc=0.8, test_ece=0.1, test_reliability=bins(0.8),
                 test_reliability_ts_clean=bins(0.85), test_reliability_ts_noisy=bins(0.75, smooth=False))
    records = local_records([tmp_path / "sweep"])
    paths = plots.plot_reliability(records, tmp_path / "fig", caption="Runs: these.")
    fig = figures[0]
    assert not [a for a in fig.axes if not a.axison]  # every panel drawn: none left blank
    diagrams = [a for a in fig.axes if a.get_ylabel() == "accuracy"]
    assert len(diagrams) == 9  # one row per run: before, after TS (clean), after TS (noisy)
    width, height = Image.open(paths[0]).size
    inches = fig.get_size_inches() * 72
    assert height < 1.6 * width and width < 1.15 * inches[0]  # the caption is wrapped to the figure


def test_error_bars_at_one_noise_rate_are_dodged(make_run, tmp_path, figures):
    for seed in range(3):
        for loss in ("ce", "gce", "mae"):
            for noise in ("sym20", "sym60"):
                make_run(f"{loss}-{noise}-{seed}", loss, noise, seed, test_acc=0.8 + seed / 100)
    frame = runs_frame(local_records([tmp_path / "sweep"]))
    plots.plot_metric_vs_noise(frame, "test_acc", tmp_path / "fig")
    ax = figures[0].axes[0]
    xs = [np.asarray(c.lines[0].get_xdata(), dtype=float) for c in ax.containers]
    assert len(xs) == 3
    for i in range(2):  # at each rate the three lines sit side by side, close to the rate
        at = sorted(x[i] for x in xs)
        assert at[0] < at[1] < at[2] and at[2] - at[0] < 5 and abs(np.mean(at) - (20, 60)[i]) < 1e-9
    assert sorted(ax.get_xticks()) == [20, 60]


def test_one_colour_per_line_in_every_panel_and_in_the_legend(make_run, tmp_path, figures):
    """ce has no asymmetric runs (the first panel): gce keeps one colour, the legend's, in both panels."""
    for seed in range(2):
        for loss in ("ce", "gce"):
            make_run(f"{loss}-s-{seed}", loss, "sym20", seed, test_acc=0.8)
        make_run(f"gce-a-{seed}", "gce", "asym40", seed, noise_kind="asymmetric", noise_rate=0.4,
                 test_acc=0.7)
    frame = runs_frame(local_records([tmp_path / "sweep"]))
    plots.plot_metric_vs_noise(frame, "test_acc", tmp_path / "fig")
    fig = figures[0]
    drawn: dict[str, set] = {}
    for ax in fig.axes:
        for bars in ax.containers:
            drawn.setdefault(bars.get_label(), set()).add(mcolors.to_hex(bars.lines[0].get_color()))
    assert all(len(c) == 1 for c in drawn.values()) and len(drawn) == 2
    legends = [leg for leg in [*fig.legends, *(a.get_legend() for a in fig.axes)] if leg is not None]
    shown = {t.get_text(): mcolors.to_hex(h.get_color()) for leg in legends
             for t, h in zip(leg.get_texts(), leg.legend_handles, strict=True)}
    assert shown == {k: next(iter(v)) for k, v in drawn.items()}

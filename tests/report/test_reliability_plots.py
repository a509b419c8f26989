"""Reliability figures: pooling over seeds by hand, which runs a figure shows (a stated rule, not a
metric), the grid per calibrator and view, and what the panels draw."""

from __future__ import annotations

import pytest

from lossbench.report.cli import RELIABILITY_RULE, _reliability_records, main
from lossbench.report.collect import local_records, runs_frame
from lossbench.report.plots import grid_states, plot_reliability, plot_reliability_grid, pool_reliability


def bins(acc_last: float, count_last: int, smooth: bool = True) -> dict:
    count = [0] * 12 + [5, 0, count_last, 1]
    rel = {"n_bins": 15, "count": count,
           "confidence": [None] * 12 + [0.83, None, 0.97, 1.0],
           "accuracy": [None] * 12 + [0.6, None, acc_last, 1.0]}
    if smooth:
        rel["smooth"] = {"sigma": 0.05, "mu": [0.0, 0.5, acc_last], "density": [0.0, 1.0, 3.0]}
    return rel


def test_pooling_adds_counts_and_sums_by_hand():
    pooled = pool_reliability([bins(0.9, 10), bins(0.6, 30), {"status": "no bins"}])
    assert pooled["runs"] == 2 and pooled["count"][14] == 40 and pooled["count"][12] == 10
    # accuracy of the pooled bin: (0.9 * 10 + 0.6 * 30) / 40
    assert pooled["accuracy"][14] == pytest.approx(0.675)
    assert pooled["confidence"][13] is None
    # smoothed curves: density-weighted mean at each mesh point, (0.9 * 3 + 0.6 * 3) / 6 at the last
    assert pooled["smooth"]["mu"][2] == pytest.approx(0.75) and pooled["smooth"]["mu"][0] == 0.0
    assert pool_reliability([]) is None


@pytest.fixture
def sweep(make_run, tmp_path):
    i = 0
    for loss, base in (("ce", 0.8), ("focal", 0.85)):
        for noise in ("clean", "sym20", "sym60"):
            for seed in (2, 0, 1):
                make_run(str(i), loss, noise, seed, test_acc=base - seed / 100, test_ece=0.1 + seed / 100,
                         test_reliability=bins(0.9, 10), test_reliability_ts_clean=bins(0.95, 10),
                         test_reliability_ts_noisy=bins(0.5, 10, smooth=False), temperature_clean=1.2,
                         test_ece_ts_clean=0.04, test_reliability_dir_clean=bins(0.93, 10))
                i += 1
    return tmp_path / "sweep"


def test_default_runs_follow_the_stated_rule(sweep):
    records = local_records([sweep])
    frame = runs_frame(records)

    class Args:
        reliability = None

    chosen, caption = _reliability_records(Args, frame, records, ["loss"])
    assert caption == RELIABILITY_RULE and "no run is chosen by a metric" in caption
    picked = [(r.summary["loss"], r.summary["noise"], r.summary["seed"]) for r in chosen]
    assert picked == [("ce", "sym60", 0), ("focal", "sym60", 0)]  # highest noise, smallest seed


def test_grid_states_and_figures(sweep, tmp_path):
    records = local_records([sweep])
    frame = runs_frame(records)
    assert grid_states(records) == ["", "ts_clean", "ts_noisy", "dir_clean"]
    for state in grid_states(records):
        paths = plot_reliability_grid(frame, records, tmp_path / "fig", ["loss"], ["noise"], state)
        assert [p.suffix for p in paths] == [".png", ".svg"]
        assert paths[0].stat().st_size > 5000
    svg = (tmp_path / "fig" / "reliability_grid_ts_clean.svg").read_text()
    assert "temperature scaling" in svg and "fitted on clean val labels (oracle)" in svg
    assert "pools every completed run" in svg and "over-confident (red)" in svg
    one = plot_reliability([records[0]], tmp_path / "run", caption="Runs: named here.")
    text = one[1].read_text()
    assert "Dirichlet calibration" in text and "Runs: named here." in text
    assert "bin with &lt; 10 samples" in text


def test_report_plots_write_the_grids(sweep, tmp_path):
    main([str(sweep), "--format", "md", "--plots", str(tmp_path / "plots")])
    names = ("reliability", "reliability_grid", "reliability_grid_ts_clean", "reliability_grid_dir_clean")
    for name in names:
        assert (tmp_path / "plots" / f"{name}.png").stat().st_size > 5000

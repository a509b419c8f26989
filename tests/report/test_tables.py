"""Comparison tables against hand-worked numbers; the paired test; the output formats."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest
from rich.console import Console
from scipy import stats

from lossbench.report.collect import local_records, runs_frame
from lossbench.report.render import cell_text, print_rich, render, status_counts
from lossbench.report.stats import paired_test
from lossbench.report.tables import build_table, metric_direction

# test_acc by loss, noise and seed 0, 1, 2.
ACC = {
    ("ce", "sym20"): (0.80, 0.82, 0.84),     # mean .82, std .02
    ("gce", "sym20"): (0.85, 0.86, 0.90),    # mean .87, std sqrt(.0007)
    ("focal", "sym20"): (0.70, 0.71, 0.72),  # mean .71, std .01
    ("ce", "sym60"): (0.50, 0.52, 0.54),     # mean .52
    ("gce", "sym60"): (0.70, 0.60, 0.65),    # mean .65, std .05
    ("focal", "sym60"): (0.64, 0.62, 0.66),  # mean .64
}


@pytest.fixture
def sweep(make_run, tmp_path):
    i = 0
    for (loss, noise), values in ACC.items():
        for seed, acc in enumerate(values):
            make_run(str(i), loss, noise, seed, test_acc=acc, test_ece=1 - acc, test_gap=acc - 0.75)
            i += 1
    make_run("failed", "ce", "sym20", 3, status="failed")
    make_run("diverged", "focal", "sym60", 3, status="diverged", best_test_acc=0.99, diverged_epoch=2)
    make_run("unfinished", "gce", "sym60", 3, status="unfinished")
    return runs_frame(local_records([tmp_path / "sweep"]))


def test_cells_by_hand(sweep):
    t = build_table(sweep, "test_acc", ["loss"], ["noise"])
    assert t.row_keys == ["loss_family", "loss"] and t.direction == "max"
    assert t.rows == [("comp-sum", "ce"), ("robust", "gce"), ("calibration", "focal")]
    assert t.cols == [("sym20",), ("sym60",)]
    gce = t.cell(("robust", "gce"), ("sym20",))
    assert gce["mean"] == pytest.approx(0.87) and gce["std"] == pytest.approx(math.sqrt(0.0007))
    assert (gce["n"], gce["runs"]) == (3, 3)
    ce = t.cell(("comp-sum", "ce"), ("sym20",))
    assert ce["std"] == pytest.approx(0.02) and (ce["n"], ce["runs"]) == (3, 4)  # one run failed
    focal = t.cell(("calibration", "focal"), ("sym60",))
    assert (focal["n"], focal["runs"]) == (3, 4)  # one run diverged


def test_best_runner_up_and_paired_test(sweep):
    t = build_table(sweep, "test_acc", ["loss"], ["noise"])
    best20 = t.cell(("robust", "gce"), ("sym20",))
    assert best20["best"] and best20["runner_up"] == "ce"
    # gce - ce per seed: .05, .04, .06 -> t = .05 / (.01 / sqrt 3) = 8.66 on 2 df, p = .013
    p = stats.ttest_rel([0.85, 0.86, 0.90], [0.80, 0.82, 0.84]).pvalue
    assert best20["p_value"] == pytest.approx(p) and p < 0.05 and not best20["not_significant"]
    best60 = t.cell(("robust", "gce"), ("sym60",))
    assert best60["best"] and best60["runner_up"] == "focal" and best60["not_significant"]
    assert not t.cell(("comp-sum", "ce"), ("sym20",))["best"]
    assert "paired t-test" in t.test


def test_average_rank_by_hand(sweep):
    # sym20: gce 1, ce 2, focal 3; sym60: gce 1, focal 2, ce 3
    ranks = build_table(sweep, "test_acc", ["loss"], ["noise"]).avg_rank
    assert list(ranks) == [2.5, 1.0, 2.5]


def test_direction_min_and_abs(sweep):
    ece = build_table(sweep, "test_ece", ["loss"], ["noise"])
    assert ece.direction == "min" and ece.cell(("robust", "gce"), ("sym20",))["best"]
    gap = build_table(sweep, "test_gap", ["loss"], ["noise"])
    # sym20 gaps: ce +.07, gce +.12, focal -.04 -> focal is closest to 0
    assert gap.direction == "abs" and gap.cell(("calibration", "focal"), ("sym20",))["best"]
    flipped = build_table(sweep, "test_acc", ["loss"], ["noise"], direction="min")
    assert flipped.cell(("calibration", "focal"), ("sym20",))["best"]


def test_metric_directions():
    assert metric_direction("test_acc_at_best_val_noisy") == "max"
    assert metric_direction("test_top5_acc") == "max"
    for name in ("test_nll_ts_clean", "test_brier", "test_ece_classwise", "test_mce", "final_memorization"):
        assert metric_direction(name) == "min", name
    assert metric_direction("test_gap_ts_noisy") == "abs"
    assert metric_direction("temperature_noisy") is None


def test_only_completed_runs_give_values(sweep):
    t = build_table(sweep, "best_test_acc", ["loss"], ["noise"])  # only the diverged run has it
    cell = t.cell(("calibration", "focal"), ("sym60",))
    assert cell["n"] == 0 and cell["runs"] == 4 and not cell["best"]


def test_ties_are_all_best_and_not_significant(make_run, tmp_path):
    for seed in range(3):
        make_run(f"a{seed}", "ce", "sym20", seed, test_acc=0.5 + seed / 10)
        make_run(f"b{seed}", "gce", "sym20", seed, test_acc=0.5 + seed / 10)
    t = build_table(runs_frame(local_records([tmp_path / "sweep"])), "test_acc", ["loss"], ["noise"])
    for row in t.rows:
        assert t.cell(row, ("sym20",))["best"] and t.cell(row, ("sym20",))["not_significant"]


def test_pairs_by_seed(make_run, tmp_path):
    for seed, (a, b) in enumerate([(0.9, 0.8), (0.8, 0.75), (0.95, None)]):
        make_run(f"a{seed}", "ce", "sym20", seed, test_acc=a)
        if b is not None:
            make_run(f"b{seed}", "gce", "sym20", seed, test_acc=b)
    t = build_table(runs_frame(local_records([tmp_path / "sweep"])), "test_acc", ["loss"], ["noise"])
    best = t.cell(("comp-sum", "ce"), ("sym20",))
    # seeds 0 and 1 pair up: differences .10 and .05
    assert best["p_value"] == pytest.approx(stats.ttest_rel([0.9, 0.8], [0.8, 0.75]).pvalue)


def test_any_key_for_rows_and_columns_and_mixing_warning(make_run, tmp_path):
    for seed in range(2):
        for q in (0.5, 0.7):
            make_run(f"q{q}-{seed}", "gce", "sym20", seed, config={"loss.q": q}, test_acc=q + seed / 100)
    frame = runs_frame(local_records([tmp_path / "sweep"]))
    t = build_table(frame, "test_acc", ["loss.q"], ["dataset", "noise"])
    assert t.rows == [("0.5",), ("0.7",)] and t.cols == [("digits", "sym20")]
    assert t.cell(("0.7",), ("digits", "sym20"))["mean"] == pytest.approx(0.705)
    assert not t.warnings
    mixed = build_table(frame, "test_acc", ["loss"], ["noise"])
    assert any("loss.q" in w for w in mixed.warnings)


def test_paired_test_cases():
    assert math.isnan(paired_test([1.0], [0.0])[0])
    assert paired_test([1.0, 2.0], [1.0, 2.0])[0] == 1.0
    assert paired_test([2.0, 3.0], [1.0, 2.0])[0] == 0.0
    a, b = [0.9, 0.8, 0.85, 0.7], [0.85, 0.81, 0.80, 0.65]
    assert paired_test(a, b) == (pytest.approx(stats.ttest_rel(a, b).pvalue), "ttest")
    a, b = list(range(12)), [x - 0.5 + (x % 3) for x in range(12)]
    assert paired_test(a, b) == (pytest.approx(stats.wilcoxon(a, b).pvalue), "wilcoxon")
    with pytest.raises(ValueError, match="known: auto, ttest, wilcoxon"):
        paired_test(a, b, "sign")


def test_paired_differences_equal_up_to_rounding_are_equal_and_warn_nothing(recwarn):
    """0.5 + i/200 minus 0.5 + j/200 differs from i - j over 200 in the last bits: one difference, not a
    spread for a t-test to divide by (scipy would warn of catastrophic cancellation and return noise)."""
    a = [0.5 + i / 200 for i in (3, 17, 41)]
    b = [0.5 + i / 200 for i in (1, 15, 39)]
    assert len({x - y for x, y in zip(a, b, strict=True)}) > 1  # not equal as floats
    assert paired_test(a, b) == (0.0, "ttest")
    assert paired_test(a, [x + 1e-17 for x in a]) == (1.0, "ttest")
    assert paired_test([0.9, 0.8, 0.85], [0.9, 0.8, 0.85 - 1e-9])[0] == pytest.approx(
        stats.ttest_rel([0.9, 0.8, 0.85], [0.9, 0.8, 0.85 - 1e-9]).pvalue)  # a real difference is tested
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_cell_text():
    assert cell_text(0.87, 0.0264575, 3, 3, 100, 2) == "87.00 ± 2.65 (3)"
    assert cell_text(0.5, math.nan, 1, 1, 100, 2) == "50.00 (1)"
    assert cell_text(0.523, 0.01, 2, 3, 1, 3) == "0.523 ± 0.010 (2/3)"
    assert cell_text(math.nan, math.nan, 0, 2, 1, 3) == "– (0/2)"


def test_formats(sweep):
    t = build_table(sweep, "test_acc", ["loss"], ["noise"])
    md = render(t, sweep, "md")
    assert "| robust      | gce    | **87.00 ± 2.65 (3)**" in md
    assert "**65.00 ± 5.00 (3/4)**†" in md  # best at sym60, not significant; one run unfinished
    assert "82.00 ± 2.00 (3/4)" in md
    assert "1 failed" in md and "1 diverged" in md and "1 unfinished" in md
    assert "ValueError: bad q" in md and "more" not in md.split("ValueError: bad q")[1][:10]
    latex = render(t, sweep, "latex")
    # each metric column is split at the decimal point (r@{}l), so numbers align on it
    assert "\\begin{tabular}{llr@{}lr@{}lr}" in latex
    assert "robust & gce & \\textbf{87} & \\textbf{.00 $\\pm$ 2.65 (3)} & \\textbf{65} & " in latex
    assert "comp-sum & ce & 82 & .00 $\\pm$ 2.00 (3/4) & 52 & .00 $\\pm$ 2.00 (3) & 2.50 \\\\" in latex
    assert "% 1 failed" not in latex and "% failed:" in latex
    html_text = render(t, sweep, "html")
    assert "<b>87.00 ± 2.65 (3)</b>" in html_text and "lossbench-status" in html_text
    csv = pd.read_csv(io.StringIO(render(t, sweep, "csv")))
    gce = csv[(csv["loss"] == "gce") & (csv["noise"] == "sym20")].iloc[0]
    assert gce["mean"] == pytest.approx(0.87) and gce["n"] == 3 and bool(gce["best"])
    console = Console(file=io.StringIO(), width=160)
    print_rich(t, sweep, console=console)
    out = console.file.getvalue()
    assert "87.00 ± 2.65 (3)" in out and "unfinished" in out
    assert status_counts(sweep) == {"completed": 18, "diverged": 1, "failed": 1, "unfinished": 1}


def test_fewer_than_three_seeds_a_side_is_said_and_not_bold(make_run, tmp_path):
    for seed, (a, b) in enumerate([(0.90, 0.80), (0.91, 0.80)]):
        make_run(f"a{seed}", "ce", "sym20", seed, test_acc=a)
        make_run(f"b{seed}", "gce", "sym20", seed, test_acc=b)
    frame = runs_frame(local_records([tmp_path / "sweep"]))
    t = build_table(frame, "test_acc", ["loss"], ["noise"])
    ce = t.cell(("comp-sum", "ce"), ("sym20",))
    p = stats.ttest_rel([0.90, 0.91], [0.80, 0.80]).pvalue
    assert p < 0.05  # the t-test alone would call it significant, on two seeds
    assert ce["best"] and ce["pairs"] == 2 and ce["too_few_seeds"] and ce["p_value"] == pytest.approx(p)
    md = render(t, frame, "md")
    assert "**90.50" not in md and "90.50 ± 0.71 (2)‡" in md
    assert "‡: highest mean in its column, not marked best" in md and "fewer than 3 seeds a side" in md
    assert f"sym20: ce against gce, paired t-test on 2 seeds a side, p = {p:.2g}" in md
    latex = render(t, frame, "latex")
    assert "\\textbf{90}" not in latex and "$^\\ddagger$" in latex
    csv = pd.read_csv(io.StringIO(render(t, frame, "csv")))
    row = csv[csv["loss"] == "ce"].iloc[0]
    assert row["test"] == "paired t-test" and row["pairs"] == 2 and bool(row["too_few_seeds"])
    assert row["p_value"] == pytest.approx(p)


def test_the_test_and_its_p_are_in_md_and_csv(sweep):
    t = build_table(sweep, "test_acc", ["loss"], ["noise"])
    p = stats.ttest_rel([0.85, 0.86, 0.90], [0.80, 0.82, 0.84]).pvalue
    md = render(t, sweep, "md")
    assert f"sym20: gce against ce, paired t-test on 3 seeds a side, p = {p:.2g}: significant" in md
    assert "sym60: gce against focal, paired t-test on 3 seeds a side, p = " in md
    csv = pd.read_csv(io.StringIO(render(t, sweep, "csv")))
    gce = csv[(csv["loss"] == "gce") & (csv["noise"] == "sym20")].iloc[0]
    assert gce["test"] == "paired t-test" and gce["pairs"] == 3 and not gce["too_few_seeds"]


def test_folds_of_a_cross_validation_are_replicates(make_run, tmp_path):
    """A 5-fold sweep of one seed: each cell averages its 5 folds (n = 5), the paired test pairs the
    losses fold by fold, no cell is said to repeat a seed or to mix folds, and the title says so."""
    acc = {"ce": [0.80, 0.82, 0.78, 0.85, 0.81], "gce": [0.70, 0.74, 0.69, 0.72, 0.75]}
    for loss, values in acc.items():
        for fold, value in enumerate(values):
            make_run(f"{loss}-f{fold}", loss, "sym20", 0, config={"dataset.folds": 5, "dataset.fold": fold},
                     test_acc=value)
    frame = runs_frame(local_records([tmp_path / "sweep"]))
    t = build_table(frame, "test_acc", ["loss"], ["noise"])
    best = t.cell(("comp-sum", "ce"), ("sym20",))
    assert best["n"] == 5 and best["mean"] == pytest.approx(sum(acc["ce"]) / 5) and best["best"]
    assert best["p_value"] == pytest.approx(stats.ttest_rel(acc["ce"], acc["gce"]).pvalue)
    assert not t.warnings and t.replicates == "seeds and folds"
    assert "mean ± std over seeds and folds (runs)" in render(t, frame, "md")
    plain = build_table(frame[frame["dataset.fold"] == 0], "test_acc", ["loss"], ["noise"])
    assert plain.cell(("comp-sum", "ce"), ("sym20",))["n"] == 1


def test_without_folds_the_seed_alone_is_the_replicate(make_run, tmp_path):
    for fold in (0, 1):  # dataset.fold recorded, but no cross-validation (dataset.folds 0): a repeated seed
        make_run(f"r{fold}", "ce", "sym20", 0, config={"dataset.folds": 0, "dataset.fold": fold},
                 test_acc=0.5)
    t = build_table(runs_frame(local_records([tmp_path / "sweep"])), "test_acc", ["loss"], ["noise"])
    assert t.replicates == "seeds" and any("same seed" in w for w in t.warnings)

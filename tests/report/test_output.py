"""Where the report's output goes and what it counts: stdout holds only the table, a run counts once,
an all-failed sweep lists its failures, the best is marked without styles, LaTeX aligns on the point."""

from __future__ import annotations

import csv
import io
import re
from types import SimpleNamespace

import pytest
from rich.console import Console

from lossbench.report.cli import main
from lossbench.report.collect import local_records, runs_frame
from lossbench.report.render import print_rich, render
from lossbench.report.tables import build_table

from .conftest import write_wandb_file

ACC = {("ce", "sym20"): (0.80, 0.82, 0.84), ("gce", "sym20"): (0.85, 0.86, 0.90),
       ("ce", "sym60"): (0.50, 0.52, 0.54), ("gce", "sym60"): (0.70, 0.60, 0.65)}
RELIABILITY = {"n_bins": 2, "confidence": [0.25, 0.75], "accuracy": [0.5, 0.5], "count": [2, 2]}


@pytest.fixture
def sweep(make_run, tmp_path):
    i = 0
    for (loss, noise), values in ACC.items():
        for seed, acc in enumerate(values):
            make_run(str(i), loss, noise, seed, test_acc=acc, test_gap=acc - 0.9,
                     test_reliability=RELIABILITY, history=[{"epoch": e, "test_acc": acc} for e in (1, 2)])
            i += 1
    make_run("failed", "gce", "sym20", 5, status="failed")
    return tmp_path / "sweep"


def test_csv_on_stdout_parses_as_csv_with_plots(sweep, tmp_path, cli):
    """The real command in a subprocess: nothing but the CSV on stdout, messages on stderr."""
    proc = cli("report", str(sweep), "--format", "csv", "--plots", str(tmp_path / "plots"), cwd=tmp_path)
    rows = list(csv.reader(io.StringIO(proc.stdout)))
    assert rows[0][:5] == ["loss_family", "loss", "noise", "metric", "mean"]
    assert len(rows) == 5 and all(len(r) == len(rows[0]) for r in rows)
    assert {(r[1], r[2]) for r in rows[1:]} == set(ACC)
    # metric vs noise, per-run reliability, the before-calibration grid, learning curves: png + svg each
    assert proc.stderr.count("wrote ") == 8 and "1 failed" in proc.stderr


def test_messages_go_to_stderr_in_every_mode(sweep, tmp_path, capsys):
    main([str(sweep), "--format", "md"])
    out, err = capsys.readouterr()
    assert out.startswith("**test_acc (%)") and out.endswith("| ValueError: bad q |\n") and err == ""
    main([str(sweep), "--out", str(tmp_path / "t.md"), "--runs-csv", str(tmp_path / "runs.csv")])
    out, err = capsys.readouterr()
    assert out == "" and f"wrote {tmp_path / 't.md'}" in err and "1 failed" in err


def test_a_run_read_from_its_folder_and_from_wandb_counts_once(sweep, tmp_path, capsys):
    summary = {"status": "completed", "loss": "ce", "noise": "sym20", "seed": 0, "test_acc": 0.80}
    config = {"loss": "ce", "noise": "sym20", "seed": 0, "noise.rate": 0.2}
    write_wandb_file(sweep / "0", "run0abcd", summary, config)
    main([str(sweep), "--wandb-dir", str(sweep), "--format", "csv"])
    out, err = capsys.readouterr()
    cells = {(r["loss"], r["noise"]): r for r in csv.DictReader(io.StringIO(out))}
    assert cells[("ce", "sym20")]["n"] == "3" and cells[("ce", "sym20")]["runs"] == "3"
    assert "note: 1 run(s) read both from a folder and from W&B count once" in err

    # the same W&B run through the API (its id matches the file beside the run folder)
    from lossbench.report import wandb_source

    online = wandb_source.online_records("me/p", api=SimpleNamespace(runs=lambda project, filters: [
        SimpleNamespace(summary_metrics=summary, config=config, path=["me", "p", "run0abcd"],
                        scan_history=lambda: iter([]))]))
    from lossbench.report.collect import deduplicate

    kept, dropped = deduplicate(local_records([sweep]) + online)
    assert dropped == 1 and len(kept) == 13
    only_online, dropped = deduplicate(online + online)
    assert dropped == 1 and len(only_online) == 1


def test_a_sweep_whose_jobs_all_failed_lists_the_failures(make_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    for seed in range(3):
        make_run(f"job{seed}", "gce", "sym20", seed, status="failed")
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "sweep")])
    assert exit_info.value.code == 1
    out, err = capsys.readouterr()
    assert err == ("lossbench report: error: no completed run to tabulate (3 in all: 0 completed, "
                   "0 diverged, 3 failed, 0 unfinished); every run is listed above\n")
    for seed in range(3):
        [line] = [line for line in out.splitlines() if f"job{seed} " in line]
        assert "failed" in line and f"loss=gce noise=sym20 seed={seed}" in line
        assert "ValueError: bad q" in line
    with pytest.raises(SystemExit):  # with --format, the listing goes to stderr, stdout stays empty
        main([str(tmp_path / "sweep"), "--format", "csv"])
    out, err = capsys.readouterr()
    assert out == "" and err.count("ValueError: bad q") == 3


def test_the_best_cell_is_marked_in_plain_text_when_the_output_shows_no_styles(sweep):
    frame = runs_frame(local_records([sweep]))
    table = build_table(frame, "test_acc", ["loss"], ["noise"])
    plain = Console(file=io.StringIO(), width=200)  # a file: not a terminal
    print_rich(table, frame, console=plain)
    text = plain.file.getvalue()
    assert "*87.00 ± 2.65 (3/4)*" in text and "*65.00 ± 5.00 (3)*†" in text
    assert " 82.00 ± 2.00 (3) " in text and "*82.00" not in text
    assert "*…*: best in its column" in text and "bold: best" not in text
    styled = Console(file=io.StringIO(), width=200, force_terminal=True, color_system="standard")
    print_rich(table, frame, console=styled)
    text = styled.file.getvalue()
    assert "\x1b[1m87.00 ± 2.65 (3/4)\x1b[0m" in text and "*87.00" not in text and "bold" in text


def test_latex_numbers_align_on_the_decimal_point(sweep):
    frame = runs_frame(local_records([sweep]))
    for metric, digits in (("test_acc", None), ("test_gap", 3), ("test_acc", 0)):
        latex = render(build_table(frame, metric, ["loss"], ["noise"]), frame, "latex", digits)
        assert "\\begin{tabular}{llr@{}lr@{}lr}" in latex
        rows = [line for line in latex.splitlines()
                if line.endswith("\\\\") and not line.startswith("family")]
        assert len(rows) == 2
        for row in rows:
            cells = row.removesuffix(" \\\\").split(" & ")
            assert len(cells) == 7
            for whole, rest in (cells[2:4], cells[4:6]):  # each column: integer part | point, rest
                whole = re.sub(r"\\textbf\{(.*)\}", r"\1", whole)
                rest = re.sub(r"\\textbf\{(.*?)\}", r"\1", rest)
                assert re.fullmatch(r"-?\d+", whole), row
                assert re.match(r"\.\d+ " if digits != 0 else r" ", rest), row
            assert re.fullmatch(r"\d\.\d\d", cells[6])  # avg rank, right-aligned with fixed decimals
    gap = render(build_table(frame, "test_gap", ["loss"], ["noise"]), frame, "latex", 3)
    assert " & -8 & .000 $\\pm$ 2.000 (3) & " in gap  # ce at sym20: gap -8.00 %


@pytest.mark.parametrize("argv, message", [
    (["--digits", "-1"], "--digits -1: decimals must be between 0 and 12"),
    (["--alpha", "1.5"], "--alpha 1.5: a significance level must lie strictly between 0 and 1"),
    (["--out", "x.md", "--out", "y.txt"], "cannot tell the format of 'y.txt' from its suffix"),
])
def test_bad_options_are_refused_before_anything_is_written(sweep, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main([str(sweep), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "x.md").exists() and not list(tmp_path.glob("*.md"))


def test_an_output_that_cannot_be_written_is_one_line(sweep, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as exit_info:
        main([str(sweep), "--out", str(tmp_path / "file" / "table.md")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and len(err.splitlines()) == 1
    assert err.startswith(f"lossbench report: error: cannot write {tmp_path / 'file' / 'table.md'} (")


def test_a_folder_name_that_is_not_utf8_still_prints(sweep, tmp_path, capsys):
    """Undecodable bytes in a run folder's name (surrogate escapes) are shown as escapes, not a crash."""
    (tmp_path / "sweep" / "failed").rename(tmp_path / "sweep" / "x\udcff")
    main([str(sweep), "--format", "md"])
    out = capsys.readouterr().out
    assert "sweep/x\\\\udcff |" in out  # the escape's backslash is itself escaped for Markdown
    out.encode("utf-8", errors="strict")


def test_piped_report_cells_are_never_cut(make_run, tmp_path, capsys, monkeypatch):
    """Off a terminal rich would assume 80 columns and cut cells ("97.33 ± 0.51 (…"); it does not."""
    monkeypatch.setenv("COLUMNS", "80")
    for i, noise in enumerate(("clean", "sym20", "sym60", "sym80", "asym20", "asym40", "asym60")):
        for seed in range(3):
            make_run(f"{noise}-{seed}", "nce_rce", noise, seed, test_acc=0.9733 - i / 100 + seed / 200)
    main([str(tmp_path / "sweep")])
    out = capsys.readouterr().out
    assert not re.search(r"[\d(]\s*…", out)  # no cell cut ("97.33 ± 0.51 (…"); "*…*" is the legend's
    assert "97.83 ± 0.50 (3)" in out and "91.83 ± 0.50 (3)" in out

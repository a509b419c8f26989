"""`lossbench report` on a real sweep: every format, the plots, numbers equal to the summaries'.

The sweep is the issue's, `lossbench run -m loss=ce,gce,nce_rce,focal
noise=sym20,sym60 seed=0,1,2` on digits, cut to 3 epochs so that it runs in CI
(24 jobs in one process). One more job fails at run time inside a multirun.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import statistics
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from lossbench.report.cli import main

SWEEP = ["loss=ce,gce,nce_rce,focal", "noise=sym20,sym60", "seed=0,1,2"]
FAST = ["trainer.epochs=3", "trainer.progress=none"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, cli_session) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report_sweep")
    cli_session("run", "-m", *SWEEP, *FAST, f"hydra.sweep.dir={root / 'sweep'}",
                "hydra.sweep.subdir=${hydra.job.num}", cwd=root)
    # unreadable data files are known only inside the job: a job that fails inside a multirun (exit 1)
    raw = root / "no-data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"")
    cli_session("run", "-m", "loss=gce", "noise=sym20", "seed=3", "dataset=mnist",
                f"data_dir={root / 'no-data'}", *FAST, f"hydra.sweep.dir={root / 'more'}",
                "hydra.sweep.subdir=gce_q5", cwd=root, check=False)
    return {"root": root, "sweep": root / "sweep", "failed": root / "more" / "gce_q5"}


def _from_summaries(sweep_dir: Path, metric: str) -> dict[tuple[str, str], list[float]]:
    """metric of every completed run by (loss, noise), read straight from summary.json."""
    values = defaultdict(list)
    for path in sorted(sweep_dir.glob("*/summary.json")):
        summary = json.loads(path.read_text())
        if summary["status"] == "completed":
            values[summary["loss"], summary["noise"]].append(summary[metric])
    return values


def test_sweep_report_prints_writes_and_matches_the_summaries(sweep, cli, tmp_path, capsys):
    sweep_dir = sweep["sweep"]
    assert len(list(sweep_dir.glob("*/summary.json"))) == 24

    printed = cli("report", str(sweep_dir), cwd=tmp_path, env={"COLUMNS": "200"}).stdout
    for loss in ("ce", "gce", "nce_rce", "focal"):
        assert f" {loss} " in printed
    assert "24 in all: 24 completed, 0 diverged, 0 failed, 0 unfinished" in printed

    outs = [tmp_path / f"table.{suffix}" for suffix in ("md", "tex", "csv", "html")]
    argv = [str(sweep_dir), "--plots", str(tmp_path / "plots")]
    main(argv + [arg for out in outs for arg in ("--out", str(out))])
    for name in ("test_acc_vs_noise", "reliability", "learning_curves"):
        for suffix in ("png", "svg"):
            assert (tmp_path / "plots" / f"{name}.{suffix}").stat().st_size > 1000

    expected = _from_summaries(sweep_dir, "test_acc")
    assert len(expected) == 8 and all(len(v) == 3 for v in expected.values())
    table = pd.read_csv(outs[2])
    assert len(table) == 8
    markdown = outs[0].read_text()
    plain_latex = re.sub(r"\\textbf\{([^}]*)\}", r"\1", outs[1].read_text())
    html = outs[3].read_text()
    for (loss, noise), values in expected.items():
        line = table[(table["loss"] == loss) & (table["noise"] == noise)].iloc[0]
        mean, std = statistics.fmean(values), statistics.stdev(values)
        assert line["mean"] == pytest.approx(mean, abs=1e-12) and line["std"] == pytest.approx(std, abs=1e-12)
        assert line["n"] == 3 and line["runs"] == 3
        shown = f"{100 * mean:.2f} ± {100 * std:.2f} (3)"
        assert shown in markdown and shown in html
        whole, fraction = f"{100 * mean:.2f}".split(".")  # LaTeX splits a column at the decimal point
        assert f"{whole} & .{fraction} $\\pm$ {100 * std:.2f} (3)" in plain_latex
    for noise in ("sym20", "sym60"):
        best = max((statistics.fmean(v), loss) for (loss, n), v in expected.items() if n == noise)[1]
        assert table[(table["noise"] == noise) & table["best"]]["loss"].tolist() == [best]

    # any metric, any direction, straight from the summaries too
    for metric in ("test_ece_ts_clean", "test_acc_at_best_val_noisy"):
        capsys.readouterr()
        main([str(sweep_dir), "--metric", metric, "--format", "csv"])
        table = pd.read_csv(io.StringIO(capsys.readouterr().out))
        for (loss, noise), values in _from_summaries(sweep_dir, metric).items():
            line = table[(table["loss"] == loss) & (table["noise"] == noise)].iloc[0]
            assert line["mean"] == pytest.approx(statistics.fmean(values), abs=1e-12)


def test_failed_and_unfinished_runs_are_reported(sweep, tmp_path, capsys):
    failure = json.loads((sweep["failed"] / "failure.json").read_text())
    assert failure["status"] == "failed" and "unreadable" in failure["error"]
    assert not (sweep["failed"] / "summary.json").exists()

    copy = tmp_path / "sweep"
    shutil.copytree(sweep["sweep"], copy)
    shutil.copytree(sweep["failed"], copy / "gce_q5")
    gone = json.loads((copy / "0" / "summary.json").read_text())
    (copy / "0" / "summary.json").unlink()  # as if the job were killed before its summary

    main([str(copy), "--format", "md"])
    out = capsys.readouterr().out
    # the failed run is another experiment (dataset=mnist): a table of its own, never pooled
    digits, mnist = out.split("**test_acc (%) for dataset=mnist")
    assert "24 in all: 23 completed, 0 diverged, 0 failed, 1 unfinished" in digits
    assert "1 in all: 0 completed, 0 diverged, 1 failed, 0 unfinished" in mnist
    assert "gce_q5" in mnist and failure["error"].splitlines()[0][:60] in mnist
    assert "unfinished" in digits and "3 epoch(s) logged" in digits
    assert f"({2}/3)" in digits  # the cell that lost a run
    assert "– (0/1)" in mnist and "(3/4)" not in out  # gce at sym20 on digits: three runs
    for loss in ("ce", "gce", "nce_rce", "focal"):
        assert f"| {loss} " in out
    assert gone["loss"] == "ce" and gone["noise"] == "sym20"

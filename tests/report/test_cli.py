"""`lossbench report` in-process on fabricated runs: outputs, plots, errors."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from lossbench.report.cli import main

RELIABILITY = {
    "n_bins": 15,
    "confidence": [None] * 10 + [0.7, 0.75, None, 0.9, 0.95, 1.0],
    "accuracy": [None] * 10 + [0.5, 1.0, None, 1.0, 0.8, 1.0],
    "count": [0] * 10 + [2, 1, 0, 1, 5, 1],
}


@pytest.fixture
def sweep(make_run, tmp_path):
    i = 0
    for loss, base in (("ce", 0.8), ("gce", 0.85)):
        for noise in ("clean", "sym20", "sym60"):
            for seed in range(2):
                history = [{"epoch": e, "test_acc": base * e / 3, "memorization": 0.1 * (e - 1)}
                           for e in (1, 2, 3)]  # epochs are numbered from 1
                make_run(str(i), loss, noise, seed, history=history, test_acc=base - seed / 100,
                         test_ece=0.1, test_ece_ts_clean=0.05, temperature_clean=1.5,
                         test_reliability=RELIABILITY, test_reliability_ts_clean=RELIABILITY,
                         test_reliability_ts_noisy=RELIABILITY)
                i += 1
    make_run("failed", "gce", "sym60", 5, status="failed")
    return tmp_path / "sweep"


def test_prints_a_rich_table_and_the_status(sweep, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    main([str(sweep)])
    out = capsys.readouterr().out
    assert "79.50 ± 0.71 (2)" in out and "84.50 ± 0.71 (2/3)" in out and "avg rank" in out
    assert "1 failed" in out and "ValueError: bad q" in out


def test_writes_every_format_and_plots(sweep, tmp_path, capsys):
    outs = [tmp_path / f"table.{s}" for s in ("md", "tex", "csv", "html")]
    argv = [str(sweep), "--plots", str(tmp_path / "fig"), "--runs-csv", str(tmp_path / "runs.csv")]
    for out in outs:
        argv += ["--out", str(out)]
    main(argv)
    for out in outs:
        assert out.stat().st_size > 0
    assert re.search(r"\|\s*clean\s*\|\s*sym20\s*\|\s*sym60\s*\|", outs[0].read_text())
    for name in ("test_acc_vs_noise", "reliability", "learning_curves"):
        for suffix in ("png", "svg"):
            assert (tmp_path / "fig" / f"{name}.{suffix}").stat().st_size > 1000
    assert len(pd.read_csv(tmp_path / "runs.csv")) == 13


def test_format_to_stdout_metric_and_where(sweep, capsys):
    main([str(sweep), "--format", "csv", "--metric", "test_ece_ts_clean", "--where", "loss=ce"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("loss_family,loss,noise,metric,mean")
    assert len(lines) == 4 and all(",ce," in line and "test_ece_ts_clean" in line for line in lines[1:])


def test_reliability_for_chosen_runs(sweep, tmp_path):
    main([str(sweep), "--format", "md", "--plots", str(tmp_path / "fig"), "--reliability", str(sweep / "3")])
    assert (tmp_path / "fig" / "reliability.png").exists()


def test_list(sweep, capsys):
    main([str(sweep), "--list"])
    out = capsys.readouterr().out
    assert "test_ece_ts_clean" in out and "loss.q" not in out and "noise.rate" in out


@pytest.mark.parametrize("argv, message", [
    (["--metric", "test_nope"], "unknown metric 'test_nope'; known: "),
    (["--metric", "test_ece_ts"], "'test_ece_ts' is recorded once per validation view: test_ece_ts_noisy"),
    (["--rows", "lr"], "unknown key 'lr'; known: dataset"),
    (["--where", "loss"], "--where takes KEY=VALUE"),
    (["--where", "loss=nope"], "no run matches loss=nope"),
    (["--out", "table.txt"], "cannot tell the format"),
])
def test_usage_errors(sweep, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main([str(sweep), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_no_runs(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path)])
    assert "no runs in" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing")])
    assert "no such directory" in capsys.readouterr().err


def test_metric_lists_only_metrics(make_run, tmp_path, capsys):
    """Counts and settings a summary records (sizes, epochs run, noise rates, switches) are no metric."""
    make_run("0", "ce", "sym20", 0, test_acc=0.8, test_ece=0.1, wall_time_s=3.0, num_train=100,
             num_classes=10, epochs=3, expected_noise_rate=0.18, realized_noise_rate=0.19, verbose=False)
    with pytest.raises(SystemExit):
        main([str(tmp_path / "sweep"), "--metric", "test_nope"])
    known = capsys.readouterr().err.strip().split("known: ")[1].split(", ")
    assert {"test_acc", "test_ece", "wall_time_s"} <= set(known)
    assert not {"num_train", "num_classes", "epochs", "noise_rate", "expected_noise_rate",
                "realized_noise_rate", "seed", "verbose"} & set(known)
    main([str(tmp_path / "sweep"), "--list"])
    listed = capsys.readouterr().out.splitlines()[0].removeprefix("metrics: ").split(", ")
    assert listed == known

"""Runs that differ in a setting that is neither a row nor a column are never pooled into one cell:
one table per setting (named), or a one-line refusal; the same experiment and seed twice counts once."""

from __future__ import annotations

import io
import shutil

import pandas as pd
import pytest

from lossbench.report.cli import main
from lossbench.report.collect import local_records, runs_frame

MNIST = {"choices": {"dataset": "mnist"}}


def _mnist(config: dict | None = None) -> dict:
    return {**MNIST, "config": {"dataset._target_": "x.mnist", "trainer.epochs": 2, **(config or {})}}


@pytest.fixture
def mixed(make_run, tmp_path):
    """CE and GCE at sym20, two seeds each, on digits for 3 epochs and on MNIST for 2 epochs (the
    issue's `lossbench report outputs`): same rows, same column, different experiments."""
    for loss, base in (("ce", 0.80), ("gce", 0.70)):
        for seed in range(2):
            make_run(f"digits-{loss}-{seed}", loss, "sym20", seed, config={"trainer.epochs": 3},
                     test_acc=base + seed / 100)
            make_run(f"mnist-{loss}-{seed}", loss, "sym20", seed, test_acc=base + 0.15 + seed / 100,
                     **_mnist())
    return tmp_path / "sweep"


def test_settings_are_split_one_table_each_named(mixed, capsys):
    main([str(mixed), "--format", "csv"])
    out, err = capsys.readouterr()
    cells = pd.read_csv(io.StringIO(out))
    assert len(cells) == 4 and set(cells["dataset"]) == {"digits", "mnist"}
    ce = cells[(cells["loss"] == "ce") & (cells["dataset"] == "mnist")].iloc[0]
    assert ce["n"] == 2 and ce["mean"] == pytest.approx(0.955)  # never pooled with the digits runs
    assert set(cells["trainer.epochs"]) == {2, 3}
    assert "2 tables, one per setting" in err and "dataset, trainer.epochs" in err


def test_split_tables_are_named_in_every_format(mixed, tmp_path, capsys, monkeypatch):
    main([str(mixed), "--format", "md"])
    md = capsys.readouterr().out
    assert md.count("**test_acc (%)") == 2
    assert "dataset=digits, trainer.epochs=3" in md and "dataset=mnist, trainer.epochs=2" in md
    assert "80.50 ± 0.71 (2)" in md and "95.50 ± 0.71 (2)" in md
    for suffix in ("tex", "html"):
        main([str(mixed), "--out", str(tmp_path / f"t.{suffix}")])
        text = (tmp_path / f"t.{suffix}").read_text()
        assert text.count("dataset=mnist, trainer.epochs=2") == 1 and "dataset=digits" in text
    monkeypatch.setenv("COLUMNS", "200")
    main([str(mixed)])
    out = capsys.readouterr().out
    assert "dataset=mnist, trainer.epochs=2" in out and "95.50 ± 0.71 (2)" in out


def test_refuse_names_the_keys_and_how_to_choose(mixed, tmp_path, capsys):
    out = tmp_path / "t.md"
    with pytest.raises(SystemExit) as exc:
        main([str(mixed), "--mixed", "refuse", "--out", str(out)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and not out.exists() and len(err.strip().splitlines()) == 1
    assert "differ in dataset, trainer.epochs" in err and "--cols dataset,noise" in err
    assert "--where dataset=digits" in err


def test_a_setting_made_a_column_is_not_split(mixed, capsys):
    main([str(mixed), "--cols", "dataset,noise", "--format", "csv", "--mixed", "refuse"])
    out, err = capsys.readouterr()
    cells = pd.read_csv(io.StringIO(out))
    assert len(cells) == 4 and "trainer.epochs" not in cells and "one per setting" not in err
    main([str(mixed), "--where", "dataset=mnist", "--format", "csv", "--mixed", "refuse"])
    assert len(pd.read_csv(io.StringIO(capsys.readouterr().out))) == 2


def test_housekeeping_never_splits(make_run, tmp_path):
    from lossbench.report.settings import setting_values, split_by_setting

    for seed in range(2):
        make_run(f"a{seed}", "ce", "sym20", seed, config={"trainer.progress": "none", "trainer.threads": 1,
                                                           "dataset.data_dir": "/a"}, test_acc=0.8)
        make_run(f"b{seed + 2}", "ce", "sym20", seed + 2, config={"trainer.progress": "bar",
                                                                  "trainer.threads": 4}, test_acc=0.8)
    records = local_records([tmp_path / "sweep"])
    frame = runs_frame(records)
    parts = split_by_setting(frame, setting_values(records), ["loss", "noise"])
    assert len(parts) == 1 and parts[0].name == "" and len(parts[0].index) == 4


def test_an_override_inside_a_loss_is_a_setting(make_run, tmp_path):
    """gce with q = 0.5 and q = 0.7 in one row "gce": split (or put loss.q in the rows)."""
    from lossbench.report.settings import setting_values, split_by_setting

    for seed in range(2):
        for q in (0.5, 0.7):
            make_run(f"q{q}-{seed}", "gce", "sym20", seed, config={"loss.q": q}, test_acc=q)
    records = local_records([tmp_path / "sweep"])
    frame = runs_frame(records)
    parts = split_by_setting(frame, setting_values(records), ["loss", "noise"])
    assert [p.name for p in parts] == ["loss.q=0.5", "loss.q=0.7"]
    assert len(split_by_setting(frame, setting_values(records), ["loss.q", "noise"])) == 1


def test_the_same_experiment_twice_counts_once(make_run, tmp_path, capsys):
    """The same sweep under two launchers: every run folder twice; n counts each run once."""
    from lossbench.report.settings import drop_duplicates

    for seed in range(2):
        make_run(str(seed), "ce", "sym20", seed, test_acc=0.8 + seed / 100)
    make_run("2", "ce", "sym20", 2, status="failed")
    shutil.copytree(tmp_path / "sweep", tmp_path / "joblib")
    # the failed run succeeded under the second launcher: the completed one is kept
    shutil.rmtree(tmp_path / "joblib" / "2")
    make_run("2", "ce", "sym20", 2, root=tmp_path / "joblib", test_acc=0.9)
    records, notes = drop_duplicates(local_records([tmp_path / "sweep", tmp_path / "joblib"]))
    assert len(records) == 3 and any(r.summary["status"] == "failed" for r in records) is False
    assert len(notes) == 1 and "3 run(s)" in notes[0]
    main([str(tmp_path / "sweep"), str(tmp_path / "joblib"), "--format", "csv"])
    out, err = capsys.readouterr()
    cell = pd.read_csv(io.StringIO(out)).iloc[0]
    assert (cell["n"], cell["runs"]) == (3, 3) and cell["mean"] == pytest.approx((0.80 + 0.81 + 0.90) / 3)
    assert "same experiment and seed" in err and "each counts once" in err


def test_plots_go_to_one_folder_per_setting(mixed, tmp_path, capsys):
    main([str(mixed), "--format", "csv", "--plots", str(tmp_path / "plots")])
    folders = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert folders == ["dataset_digits__trainer.epochs_3", "dataset_mnist__trainer.epochs_2"]
    for folder in folders:
        assert (tmp_path / "plots" / folder / "test_acc_vs_noise.png").stat().st_size > 1000

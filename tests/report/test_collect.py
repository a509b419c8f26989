"""Run directories to records to DataFrame rows."""

from __future__ import annotations

import pytest

from lossbench.report.collect import (
    RunRecord,
    find_run_dirs,
    local_records,
    read_run,
    record_to_row,
    runs_frame,
)


def test_record_to_row_of_a_finished_run():
    summary = {
        "status": "completed", "loss": "focal", "noise": "sym20", "seed": 1, "test_acc": 0.9,
        "overrides": ["loss=focal", "seed=1"], "provenance": {"torch": "2.x", "git_dirty": False},
        "test_reliability": {"n_bins": 15, "count": [1]}, "config": {"seed": 99},
    }
    config = {"seed": 1, "loss": {"gamma": 3.0}, "model": {"hidden": [256, 256]}}
    row = record_to_row(summary, config, "/runs/0")
    assert row["run_dir"] == "/runs/0" and row["status"] == "completed"
    assert row["loss"] == "focal" and row["loss.gamma"] == 3.0 and row["model.hidden"] == "[256, 256]"
    assert row["overrides"] == "loss=focal seed=1"
    assert row["provenance.torch"] == "2.x"
    assert row["loss_family"] == "calibration"  # from the loss registry
    assert "test_reliability" not in row and "config" not in row


def test_record_to_row_config_falls_back_to_the_summary_and_summary_wins():
    row = record_to_row({"status": "completed", "seed": 3, "config": {"seed": 3, "trainer": {"epochs": 5}}},
                        None, None)
    assert row["trainer.epochs"] == 5 and row["run_dir"] is None
    row = record_to_row({"status": "completed", "epochs": 2}, {"epochs": 30}, None)
    assert row["epochs"] == 2


@pytest.mark.parametrize("failure", [
    {"status": "failed", "error": "E", "traceback": "T", "choices": {"loss": "gce", "noise": "sym20"}},
    {"status": "failed", "error": "E", "traceback": "T", "loss": "gce", "noise": "sym20"},
])
def test_record_to_row_of_a_failed_run(failure):
    row = record_to_row(failure, {"seed": 2, "noise": {"rate": 0.2}}, "/runs/1")
    assert row["status"] == "failed" and row["loss"] == "gce" and row["noise"] == "sym20"
    assert row["seed"] == 2 and row["noise_rate"] == 0.2 and row["loss_family"] == "robust"
    assert row["error"] == "E" and "traceback" not in row


def test_record_to_row_of_an_unfinished_run():
    assert record_to_row(None, None, "/runs/2")["status"] == "unfinished"
    assert record_to_row({}, None, None)["status"] == "unfinished"
    row = record_to_row({"status": "unfinished", "choices": {"loss": "ce"}}, None, None)
    assert row["loss"] == "ce" and row["loss_family"] == "comp-sum"


def test_local_reader(make_run, tmp_path):
    make_run("10", "ce", "sym20", 0, test_acc=0.8)
    make_run("2", "gce", "sym20", 0, status="failed")
    make_run("nested/1", "mae", "sym60", 1, status="unfinished", history=[{"epoch": 0}, {"epoch": 1}])
    dirs = find_run_dirs([tmp_path / "sweep", tmp_path / "sweep" / "10"])  # overlapping roots: once each
    assert [d.name for d in dirs] == ["2", "10", "1"]
    records = local_records([tmp_path / "sweep"])
    frame = runs_frame(records)
    assert list(frame["status"]) == ["failed", "completed", "unfinished"]
    unfinished = frame.iloc[2]
    assert unfinished["loss"] == "mae" and unfinished["epochs_logged"] == 2 and unfinished["seed"] == 1
    assert unfinished["overrides"] == "loss=mae noise=sym60 seed=1"
    assert "hydra/launcher" not in frame.columns
    assert frame.iloc[0]["error"].startswith("ValueError")
    assert read_run(dirs[1]).summary["test_acc"] == 0.8


def test_runs_frame_takes_mappings_and_records():
    frame = runs_frame([RunRecord({"status": "completed", "test_acc": 0.5}),
                        {"summary": {"status": "diverged"}, "config": {"seed": 1}, "run_dir": "x"}])
    assert list(frame["status"]) == ["completed", "diverged"] and frame.loc[1, "seed"] == 1
    assert list(runs_frame([]).columns) == ["run_dir", "status", "loss_family"]


def test_missing_directory_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        find_run_dirs([tmp_path / "nope"])


def test_a_folder_removed_while_it_is_walked_is_skipped(make_run, tmp_path, monkeypatch):
    """`lossbench report` of a sweep as it ends: its ledger folder goes between the listing of the
    sweep folder and the walk into it; the runs are found, no FileNotFoundError."""
    import os
    import shutil

    make_run("0", "ce", "sym20", 0)
    ledger = tmp_path / "sweep" / ".lossbench-sweep-0123456789ab"
    (ledger / "jobs").mkdir(parents=True)
    real_scandir = os.scandir
    removed = []

    def scandir_then_remove(path="."):
        entries = list(real_scandir(path))
        if isinstance(path, (str, os.PathLike)) and os.fspath(path) == str(tmp_path / "sweep"):
            shutil.rmtree(ledger)  # after the listing that names it
            removed.append(any(e.name == ledger.name for e in entries))
        return _Listing(entries)

    monkeypatch.setattr(os, "scandir", scandir_then_remove)
    dirs = find_run_dirs([tmp_path / "sweep"])
    assert removed == [True] and [d.name for d in dirs] == ["0"]


class _Listing:
    """A finished listing that behaves as os.scandir's iterator (an iterator, a context manager)."""

    def __init__(self, entries: list) -> None:
        self._entries = iter(entries)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._entries)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def close(self) -> None:
        return None

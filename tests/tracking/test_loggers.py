"""logger=csv and logger=tensorboard (issue 26, item 17): files those tools' own readers read back."""

from __future__ import annotations

import json

import pytest

from lossbench.core import extras


def _records(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_csv_logger_writes_what_pandas_reads_back(run_once):
    pandas = pytest.importorskip("pandas")
    out, summary, _ = run_once("trainer.epochs=2", "logger=csv")
    frame = pandas.read_csv(out / "metrics.csv")
    records = _records(out)
    assert list(frame["epoch"]) == [1, 2]
    for key in ("train_loss", "val_acc", "val_clean_nll", "test_acc", "lr"):
        assert list(frame[key]) == pytest.approx([r[key] for r in records], rel=1e-12), key
    assert summary["config"]["logger"]["csv"] is True


def test_tensorboard_logger_writes_what_tensorboards_reader_reads_back(run_once):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, summary, _ = run_once("trainer.epochs=2", "logger=tensorboard")
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    records = _records(out)
    for key in ("train_loss", "val_acc", "test_acc", "lr"):
        scalars = events.Scalars(key)
        assert [s.step for s in scalars] == [1, 2]
        assert [s.value for s in scalars] == pytest.approx([r[key] for r in records], rel=1e-6), key
    [final] = events.Scalars("summary/test_acc")
    assert final.step == 2 and final.value == pytest.approx(summary["test_acc"], rel=1e-6)


def test_csv_beside_another_logger(run_once):
    out, _, _ = run_once("trainer.epochs=1", "logger=local", "logger.csv=true")
    assert (out / "metrics.csv").read_text().startswith("epoch,")


def test_tensorboard_without_its_package_is_one_line_with_the_pip_command(monkeypatch, capsys, tmp_path):
    from lossbench.cli import main

    monkeypatch.setattr(extras, "installed", lambda extra: extra != "tensorboard")
    for args in (["logger=tensorboard"], ["logger.tensorboard=true"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["run", f"hydra.run.dir={tmp_path / 'run'}", *args])
        [line] = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and "pip install 'tensorboard" in line, line
    assert not (tmp_path / "run").exists()

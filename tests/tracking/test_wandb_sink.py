"""WandbSink in this process: run identity, failure exit code, resume replay, media, offline fallback."""

from __future__ import annotations

import json
import logging

import pytest
from hydra import compose, initialize_config_module

from lossbench.core.io import append_jsonl
from lossbench.tracking import wandb as tracking
from lossbench.tracking.wandb import WandbSink, flatten, run_config, sweep_group
from lossbench.tracking.wandb_file import read_run, run_files

CHOICES = {"dataset": "digits", "model": "mlp", "loss": "focal", "noise": "sym60", "reweight": "none",
           "optim": "sgd", "scheduler": "cosine", "trainer": "default", "logger": "wandb"}
FAKE_KEY = "x" * 40


@pytest.fixture
def wandb_env(monkeypatch, tmp_path):
    """A fresh wandb session that can reach nothing: offline, home and netrc in tmp_path."""
    import wandb

    for name in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_ENTITY", "WANDB_PROJECT", "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    wandb.teardown()
    yield monkeypatch
    wandb.teardown()


def make_cfg(*overrides: str):
    with initialize_config_module(config_module="lossbench.conf", version_base="1.3"):
        return compose("config", overrides=["logger=wandb", "loss=focal", "noise=sym60", *overrides])


def record(epoch: int) -> dict:
    return {"epoch": epoch, "train_loss": 1.0 / (epoch + 1), "train_acc": 0.5 + epoch / 100,
            "val_acc": 0.4 + epoch / 100, "test_acc": 0.45 + epoch / 100, "lr": 0.1, "seconds": 0.01}


def bins(n_bins: int = 15) -> dict:
    count = [0] * 9 + [5, 10, 20, 30, 40, 60, 3]
    conf = [None if c == 0 else (b + 0.5) / n_bins for b, c in enumerate(count)]
    conf[-1] = None if count[-1] == 0 else 1.0
    acc = [None if c == 0 else 0.9 * v for c, v in zip(count, [x or 0 for x in conf], strict=True)]
    return {"n_bins": n_bins, "confidence": conf, "accuracy": acc, "count": count}


def summary(epochs: int = 3, **extra) -> dict:
    return {"status": "completed", **CHOICES, "loss_family": "calibration", "seed": 0, "epochs": epochs,
            "test_acc": 0.5, "test_ece": 0.1, "test_ece_ts_noisy": 0.05, "best_val_acc_noisy": 0.45,
            "test_reliability": bins(), "test_reliability_ts_noisy": bins(),
            "test_reliability_ts_clean": bins(), "provenance": {"torch": "x"},
            "config": {"not": "sent"}, **extra}


def only_run(root):
    import wandb

    wandb.teardown()  # wandb-core may still be writing the run file after finish(); wait for it
    files = run_files(root)
    assert len(files) == 1, files
    return read_run(files[0])


def test_flatten_and_run_config():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}, "f": None}) == {
        "a.b": 1, "a.c.d": [1, 2], "e": {}, "f": None}
    cfg = make_cfg("loss.gamma=2.5")
    flat = run_config(cfg, CHOICES)
    assert flat["loss"] == "focal" and flat["noise"] == "sym60" and flat["loss.gamma"] == 2.5
    assert flat["loss._target_"].endswith("FocalLoss") and flat["noise.rate"] == 0.6
    assert flat["scheduler.T_max"] == cfg.trainer.epochs  # interpolations resolved


def test_sweep_group_names_hydra_default_layout(tmp_path):
    assert sweep_group(tmp_path / "multirun" / "2026-11-24" / "10-00-00") == "2026-11-24_10-00-00"
    assert sweep_group(tmp_path / "gce_sweep") == "gce_sweep"


def test_completed_run_identity_metrics_summary_and_media(wandb_env, tmp_path):
    cfg = make_cfg("logger.mode=offline", "logger.tags=[mine]", "logger.notes=hello")
    sink = WandbSink(cfg, tmp_path, CHOICES)
    sink.start(3)
    for epoch in (1, 2, 3):  # epochs are numbered from 1, and so are the W&B steps
        sink.epoch(record(epoch))
    sink.close(summary(test_class_acc=[0.9, None, 0.1], class_names=["zero", "one", "two"]))

    run = only_run(tmp_path)
    assert run.run_dir == tmp_path
    assert run.exit_code == 0
    assert run.name == "focal-sym60-s0" and run.job_type == "digits" and run.group == ""
    assert run.tags == ["calibration", "symmetric", "mine"] and run.notes == "hello"
    assert run.config["loss"] == "focal" and run.config["loss.gamma"] == 3.0
    metrics = [{k: v for k, v in row.items() if not k.startswith("_") and k in record(0)}
               for row in run.history]
    assert metrics == [record(e) for e in (1, 2, 3)]
    assert [row["_step"] for row in run.history[:3]] == [1, 2, 3]
    # the W&B summary is the lossbench summary (without the config, which is the run config)
    expected = {k: v for k, v in summary().items() if k != "config"}
    got = {k: v for k, v in run.summary.items() if k in expected}
    assert got == expected
    assert "train_loss" not in run.summary and "lr" not in run.summary and "config" not in run.summary
    media = run.history[-1]
    assert media["reliability_diagram"]["_type"] == "image-file"
    assert media["class_accuracy"]["_type"] == "table-file"
    files = run.path.parent / "files"
    table = json.loads((files / media["class_accuracy"]["path"]).read_text())
    assert table["columns"] == ["class", "name", "accuracy"]
    assert table["data"] == [[0, "zero", 0.9], [1, "one", None], [2, "two", 0.1]]
    assert (files / media["reliability_diagram"]["path"]).stat().st_size > 1000


def test_failed_run_finishes_with_exit_code_one(wandb_env, tmp_path):
    sink = WandbSink(make_cfg("logger.mode=offline"), tmp_path, CHOICES)
    sink.start(3)
    sink.epoch(record(1))
    sink.close(None)
    run = only_run(tmp_path)
    assert run.exit_code == 1
    assert run.summary["status"] == "failed"
    assert [row["epoch"] for row in run.history] == [1]


def test_close_without_start_makes_no_run(wandb_env, tmp_path):
    WandbSink(make_cfg("logger.mode=offline"), tmp_path, CHOICES).close(None)
    assert run_files(tmp_path) == []


def test_resumed_job_replays_finished_epochs(wandb_env, tmp_path):
    for epoch in (1, 2, 3):  # epoch 3 was logged after the last checkpoint and will be redone
        append_jsonl(tmp_path / "metrics.jsonl", record(epoch))
    sink = WandbSink(make_cfg("logger.mode=offline"), tmp_path, CHOICES)
    sink.start(4, start_epoch=2)
    sink.epoch(record(3))
    sink.epoch(record(4))
    sink.close(summary(epochs=4))
    run = only_run(tmp_path)
    assert [row["epoch"] for row in run.history if "epoch" in row] == [1, 2, 3, 4]


def test_disabled_mode_writes_nothing(wandb_env, tmp_path):
    sink = WandbSink(make_cfg("logger.mode=disabled"), tmp_path, CHOICES)
    sink.start(1)
    sink.epoch(record(1))
    sink.close(summary(epochs=1))
    assert run_files(tmp_path) == []


def test_unknown_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown logger.mode 'onlin'; known: online, offline, disabled"):
        WandbSink(make_cfg("logger.mode=onlin"), tmp_path, CHOICES)


def test_online_without_credentials_goes_offline(wandb_env, tmp_path, caplog):
    wandb_env.setenv("WANDB_MODE", "online")
    sink = WandbSink(make_cfg("logger.mode=online"), tmp_path, CHOICES)
    with caplog.at_level(logging.WARNING, logger="lossbench"):
        sink.start(1)
    sink.epoch(record(1))
    sink.close(summary(epochs=1))
    assert "no W&B credentials" in caplog.text and "wandb sync" in caplog.text
    run = only_run(tmp_path)
    assert run.path.parent.name.startswith("offline-run-") and run.exit_code == 0


def test_online_init_failure_goes_offline(wandb_env, tmp_path, caplog):
    """The server answers the probe but wandb.init fails: the run still goes on, offline."""
    import wandb

    wandb_env.setenv("WANDB_MODE", "online")
    wandb_env.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    wandb_env.setenv("WANDB_API_KEY", FAKE_KEY)
    wandb_env.setenv("WANDB_X_DISABLE_VIEWER", "true")  # skip the account lookup (10 s of retries)
    wandb_env.setattr(tracking, "_reachable", lambda url, timeout: None)
    sink = WandbSink(make_cfg("logger.mode=online", "logger.init_timeout=1"), tmp_path, CHOICES)
    with caplog.at_level(logging.WARNING, logger="lossbench"):
        sink.start(1)
    sink.epoch(record(1))
    sink.close(summary(epochs=1))
    assert "127.0.0.1:9" in caplog.text and "wandb sync" in caplog.text
    wandb.teardown()
    offline = [p for p in run_files(tmp_path) if p.parent.name.startswith("offline-run-")]
    assert len(offline) == 1
    assert [row["epoch"] for row in read_run(offline[0]).history if "epoch" in row] == [1]


def _one_offline_run(tmp_path, *overrides):
    sink = WandbSink(make_cfg("logger.mode=offline", *overrides), tmp_path, CHOICES)
    sink.start(1)
    sink.epoch(record(1))
    sink.close(summary(epochs=1))
    only_run(tmp_path)


def test_wandb_is_quiet_by_default_with_one_line_saying_where(wandb_env, tmp_path, capfd, caplog):
    wandb_env.delenv("WANDB_SILENT")
    with caplog.at_level(logging.INFO, logger="lossbench"):
        _one_offline_run(tmp_path)
    out, err = capfd.readouterr()
    assert "wandb:" not in out + err  # no banners, no run summary
    [line] = [r.getMessage() for r in caplog.records if "W&B offline run" in r.getMessage()]
    assert "wandb sync" in line and "offline-run-" in line


def test_verbose_shows_wandb_banners(wandb_env, tmp_path, capfd, caplog):
    wandb_env.delenv("WANDB_SILENT")
    with caplog.at_level(logging.INFO, logger="lossbench"):
        _one_offline_run(tmp_path, "verbose=true")
    out, err = capfd.readouterr()
    assert "wandb:" in out + err
    assert not [r for r in caplog.records if "W&B offline run" in r.getMessage()]

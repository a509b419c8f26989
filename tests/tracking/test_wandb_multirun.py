"""`logger=wandb` end to end: one W&B run per multirun job, read back from the offline files."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pandas as pd
import pytest

from lossbench.core.io import read_jsonl
from lossbench.report.collect import load_history, local_records, runs_frame
from lossbench.report.wandb_source import offline_records, online_records
from lossbench.tracking.wandb_file import read_run, run_files

FAKE_KEY = "x" * 40


@pytest.fixture(scope="module")
def sweep(cli_session, tmp_path_factory):
    """A 2-job multirun (ce and focal, 20% symmetric noise, 2 epochs) logged to offline W&B runs."""
    root = tmp_path_factory.mktemp("wandb")
    sweep = root / "gce_vs_focal"
    cli_session("run", "-m", "loss=ce,focal", "noise=sym20", "trainer.epochs=2", "trainer.progress=none",
                "model.hidden=[64]", "logger=wandb", "logger.mode=offline", "logger.tags=[smoke]",
                f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${hydra.job.num}", cwd=root)
    return sweep


def same(a, b) -> bool:
    """JSON equality where NaN, None and a missing value are one thing."""
    missing = lambda v: v is None or (isinstance(v, float) and math.isnan(v))  # noqa: E731
    return (missing(a) and missing(b)) or a == b


def test_each_job_has_its_own_run_with_its_own_config_and_metrics(sweep):
    jobs = [sweep / "0", sweep / "1"]
    runs = {}
    for num, job in enumerate(jobs):
        files = run_files(job)
        assert len(files) == 1, f"{job}: expected one W&B run, found {files}"
        assert files[0].parent.name.startswith("offline-run-")
        run = read_run(files[0])
        summary = json.loads((job / "summary.json").read_text())
        loss = summary["loss"]
        runs[loss] = (run, read_jsonl(job / "metrics.jsonl"))

        assert run.exit_code == 0
        assert run.group == "gce_vs_focal"
        assert run.job_type == "digits"
        assert run.name == f"{loss}-sym20-s0-j{num}"
        assert run.tags == [summary["loss_family"], "symmetric", "smoke"]
        # the config is this job's resolved config, flattened, plus the choices
        assert run.config["loss"] == loss and run.config["noise"] == "sym20"
        assert run.config["loss._target_"] == summary["config"]["loss"]["_target_"]
        assert run.config["noise.rate"] == 0.2 and run.config["trainer.epochs"] == 2
        assert ("loss.gamma" in run.config) == (loss == "focal")
        # the summary is this job's summary.json (without the config, which is the run config)
        for key, value in summary.items():
            if key != "config":
                assert same(run.summary.get(key), value), key

    (ce_run, ce_metrics), (focal_run, focal_metrics) = runs["ce"], runs["focal"]
    assert ce_run.run_id != focal_run.run_id
    for run, own, other in ((ce_run, ce_metrics, focal_metrics), (focal_run, focal_metrics, ce_metrics)):
        assert [row["_step"] for row in run.history] == [1, 2]  # the W&B step is the epoch, from 1
        for row, mine, theirs in zip(run.history, own, other, strict=True):
            assert all(same(row[k], v) for k, v in mine.items()), (row, mine)
            assert not same(row["train_loss"], theirs["train_loss"])
        assert "reliability_diagram" in run.history[-1]


def test_wandb_records_give_the_same_frame_as_local_directories(sweep):
    local = local_records([sweep])
    remote = offline_records([sweep])
    assert len(local) == len(remote) == 2
    local_frame = runs_frame(local).sort_values("run_dir").reset_index(drop=True)
    remote_frame = runs_frame(remote).sort_values("run_dir").reset_index(drop=True)
    assert sorted(local_frame.columns) == sorted(remote_frame.columns)
    pd.testing.assert_frame_equal(local_frame, remote_frame[local_frame.columns])
    for a, b in zip(local, remote, strict=True):
        assert load_history(a) == load_history(b)


class FakeApi:
    """Stands in for wandb.Api(): serves the offline runs of the sweep as the public API would."""

    def __init__(self, sweep):
        self.files = [read_run(p) for p in run_files(sweep)]
        self.calls = []

    def runs(self, path, filters=None):
        self.calls.append((path, filters))
        for f in self.files:
            yield SimpleNamespace(summary_metrics=f.summary, config=f.config,
                                  path=["me", "lossbench", f.run_id],
                                  scan_history=lambda f=f: iter(f.history))


def test_online_records_share_the_conversion(sweep):
    api = FakeApi(sweep)
    online = online_records("me/lossbench", group="gce_vs_focal", history=True, api=api)
    assert api.calls == [("me/lossbench", {"group": "gce_vs_focal"})]
    assert sorted(r.run_dir for r in online) == sorted(f"me/lossbench/{f.run_id}" for f in api.files)
    local = local_records([sweep])
    by_loss = {r.summary["loss"]: r for r in online}
    for record in local:
        twin = by_loss[record.summary["loss"]]
        a, b = runs_frame([record]).drop(columns="run_dir"), runs_frame([twin]).drop(columns="run_dir")
        pd.testing.assert_frame_equal(a, b[a.columns])
        assert load_history(record) == load_history(twin)


def test_offline_records_filter_by_group(sweep):
    assert len(offline_records([sweep], group="gce_vs_focal")) == 2
    assert offline_records([sweep], group="another") == []


def test_report_reads_the_offline_wandb_runs(sweep, cli_session, tmp_path):
    table, runs = tmp_path / "table.csv", tmp_path / "runs.csv"
    cli_session("report", "--wandb-dir", str(sweep), "--group", "gce_vs_focal", "--out", str(table),
                "--runs-csv", str(runs), "--plots", str(tmp_path / "plots"), cwd=tmp_path)
    assert "ce" in table.read_text() and "focal" in table.read_text()
    rows = pd.read_csv(runs)
    assert sorted(rows["loss"]) == ["ce", "focal"] and set(rows["status"]) == {"completed"}
    assert any((tmp_path / "plots").glob("*.png"))


def test_online_mode_without_a_server_goes_offline(cli_session, tmp_path):
    """W&B unreachable (nothing listens on 127.0.0.1:9): the run completes offline and says how to sync."""
    out = tmp_path / "run"
    env = {"WANDB_MODE": "online", "WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_API_KEY": FAKE_KEY,
           "WANDB_ERROR_REPORTING": "false", "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config")}
    proc = cli_session("run", f"hydra.run.dir={out}", "trainer.epochs=2", "trainer.progress=none",
                       "model.hidden=[64]", "logger=wandb", "logger.mode=online", "logger.init_timeout=2",
                       cwd=tmp_path, env=env)
    output = proc.stdout + proc.stderr
    assert "W&B online logging unavailable" in output and "127.0.0.1:9" in output
    assert "wandb sync" in output
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"
    [path] = run_files(out)
    assert path.parent.name.startswith("offline-run-")
    run = read_run(path)
    assert run.exit_code == 0 and [row["epoch"] for row in run.history if "epoch" in row] == [1, 2]

"""Sweeps through Hydra's launcher and sweeper plugins: joblib, submitit (local, SLURM config), Optuna."""

from __future__ import annotations

import csv
import json

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from lossbench.tracking.wandb_file import read_run, run_files

FAST = ("trainer.epochs=2", "trainer.progress=none", "model.hidden=[64]")


NUMBERED = "hydra.sweep.subdir=${hydra.job.num}"  # folders 0, 1 (the default names them by loss)


def summaries(sweep) -> dict[str, dict]:
    """summary.json of every job directory of a sweep, by job number."""
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    return {job.name: json.loads((job / "summary.json").read_text()) for job in jobs}


@pytest.fixture(scope="module")
def launched(cli_session, tmp_path_factory):
    """Two 2-job sweeps: one through joblib (2 workers, W&B offline), one through submitit_local."""
    root = tmp_path_factory.mktemp("launchers")
    sweeps = {"joblib": root / "joblib", "submitit_local": root / "submitit"}
    cli_session("run", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "loss=ce,gce", *FAST,
                "logger=wandb", "logger.mode=offline", f"hydra.sweep.dir={sweeps['joblib']}", NUMBERED,
                cwd=root)
    cli_session("run", "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "loss=ce,gce",
                *FAST, f"hydra.sweep.dir={sweeps['submitit_local']}", NUMBERED, cwd=root)
    return sweeps


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_launcher_runs_every_job_in_hydra_layout(launched, launcher):
    sweep = launched[launcher]
    assert (sweep / "multirun.yaml").exists()
    done = summaries(sweep)
    assert sorted(done) == ["0", "1"]
    assert {s["loss"] for s in done.values()} == {"ce", "gce"}
    assert all(s["status"] == "completed" for s in done.values())
    for num in done:
        assert (sweep / num / ".hydra" / "config.yaml").exists()
        assert len((sweep / num / "metrics.jsonl").read_text().splitlines()) == 2
    if launcher == "submitit_local":
        assert (sweep / ".submitit").is_dir()


def test_joblib_workers_keep_one_wandb_run_per_job(launched):
    sweep = launched["joblib"]
    for num, summary in summaries(sweep).items():
        [path] = run_files(sweep / num)
        run = read_run(path)
        assert run.exit_code == 0 and run.config["loss"] == summary["loss"]
        assert [row["epoch"] for row in run.history if "epoch" in row] == [1, 2]


def test_report_tabulates_sweeps_of_both_launchers(launched, cli_session, tmp_path):
    table, runs = tmp_path / "table.md", tmp_path / "runs.csv"
    cli_session("report", str(launched["joblib"]), str(launched["submitit_local"]),
                "--out", str(table), "--runs-csv", str(runs), cwd=tmp_path)
    rows = list(csv.DictReader(runs.open()))
    assert len(rows) == 4
    assert sorted((r["loss"], r["status"]) for r in rows) == sorted(
        [("ce", "completed"), ("gce", "completed")] * 2)
    assert {str(launched["joblib"]) in r["run_dir"] for r in rows} == {True, False}
    text = table.read_text()
    assert "ce" in text and "gce" in text


def test_optuna_sweep_tunes_gce_q(cli_session, tmp_path):
    sweep = tmp_path / "optuna"
    proc = cli_session("run", "-m", "+experiment=optuna_gce", "hydra.sweeper.n_trials=3", *FAST,
                       f"hydra.sweep.dir={sweep}", NUMBERED, cwd=tmp_path)
    console = proc.stdout + proc.stderr
    assert "alembic" not in console and "A new study created" not in console  # quiet unless verbose=true
    assert "Best value" in console  # Hydra's own result lines stay
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    trials = summaries(sweep)
    assert len(trials) == 3 and all(s["status"] == "completed" for s in trials.values())
    qs = [s["config"]["loss"]["q"] for s in trials.values()]
    assert len(set(qs)) == 3 and all(0.05 <= q <= 1.0 for q in qs)
    best = max(trials.values(), key=lambda s: s["best_val_acc_noisy"])
    assert results.best_value == pytest.approx(best["best_val_acc_noisy"])
    assert results.best_params["loss.q"] == pytest.approx(best["config"]["loss"]["q"])


def test_slurm_launcher_config():
    with initialize_config_module(config_module="lossbench.conf", version_base="1.3"):
        cfg = compose("config", return_hydra_config=True, overrides=[
            "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.array_parallelism=4"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.array_parallelism == 4
    assert launcher.gpus_per_node == 1 and launcher.timeout_min == 240
    assert OmegaConf.select(cfg, "hydra.launcher.submitit_folder", throw_on_missing=False)

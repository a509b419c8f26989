"""hydra/launcher=packed: grouping on a dry run, ordinary run directories, skip, resume, errors."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

from hydra_plugins.lossbench_packed_launcher.packed_launcher import check_settings
from lossbench.cli import main
from lossbench.lifecycle import packs
from lossbench.lifecycle.run_folder import is_locked
from lossbench.reweight.base import Reweighter
from lossbench.tracking.wandb_file import read_run, run_files
from lossbench.train import packed

FAST = ("trainer.epochs=2", "model.hidden=[32]", "trainer.progress=none")
SWEEP = ("loss=ce,nce_rce", "noise=sym20,sym40")


def sweep(sweep_dir: Path, *overrides: str, launcher: str = "packed") -> None:
    """``lossbench run -m`` in this process (Hydra's global state cleared after)."""
    args = ["run", "-m", f"hydra.sweep.dir={sweep_dir}", "hydra.sweep.subdir=${hydra.job.num}", *overrides]
    if launcher:
        args.insert(2, f"hydra/launcher={launcher}")
    try:
        main(args)
    finally:
        GlobalHydra.instance().clear()


def summaries(sweep_dir: Path) -> dict[int, dict]:
    return {int(p.name): json.loads((p / "summary.json").read_text())
            for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()}


def plan_of(sweep_dir: Path) -> list[dict]:
    return json.loads((sweep_dir / "packs.json").read_text())["units"]


def test_shared_trainer_settings_agree():
    assert packs.SHARED_TRAINER == packed.SHARED_TRAINER


def test_dry_run_groups_by_model_not_by_loss_or_seed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "dry"
    sweep(out, "hydra.launcher.dry_run=true", "loss=ce,gce", "seed=0,1", "model=mlp,cnn4")
    units = plan_of(out)
    assert not any(p.is_dir() and p.name.isdigit() for p in out.iterdir())  # nothing trained
    assert [u["packed"] for u in units] == [True, True]
    for u in units:
        jobs = [dict(o.split("=", 1) for o in overrides) for overrides in u["overrides"]]
        assert {(j["loss"], j["seed"]) for j in jobs} == {(a, b) for a in ("ce", "gce") for b in ("0", "1")}
        assert len({j["model"] for j in jobs}) == 1
    assert [u["splits_by"] for u in units] == [[], ["model"]]


def _config(**trainer):
    return {"dataset": {"_target_": "digits"}, "model": {"_target_": "mlp", "hidden": [32]},
            "reweight": {"_target_": "lossbench.reweight.base.NoReweighting"},
            "trainer": {"epochs": 2, "batch_size": 64, "precision": "32", "compile": False, **trainer}}


def test_plan_splits_what_cannot_share_a_model_and_never_refuses():
    configs = [
        _config(), _config(), _config(batch_size=32), _config(batch_size=32), _config(epochs=3),
        _config(compile=True), _config(precision="16-mixed"), None, _config(),
        {**_config(), "model": {"_target_": "cnn4"}}, {**_config(), "model": {"_target_": "cnn4"}},
        {**_config(), "reweight": {"_target_": "tests.sweeps.test_packed_launcher.Resampling"}},
    ]
    units = packs.plan(configs, pack_size=2)
    assert sorted(u.jobs for u in units) == [[0, 8], [1], [2, 3], [4], [5], [6], [7], [9, 10], [11]]
    by_first = {u.jobs[0]: u for u in units}
    assert by_first[2].splits_by == ["trainer.batch_size"] and by_first[9].splits_by == ["model"]
    assert by_first[1].reason == "pack_size=2"
    assert "no other job shares" in by_first[4].reason
    assert "compile" in by_first[5].reason and "16-mixed" in by_first[6].reason
    assert "cannot be resolved" in by_first[7].reason and "resamples" in by_first[11].reason
    assert sum(len(u.jobs) for u in units) == len(configs)
    with pytest.raises(ValueError, match="pack_size must be >= 1, got 0"):
        packs.plan(configs, pack_size=0)


class Resampling(Reweighter):
    def epoch_indices(self, n, generator):
        return None


def test_pack_size_splits_into_even_packs():
    units = packs.plan([_config() for _ in range(8)], pack_size=3)
    assert [u.jobs for u in units] == [[0, 3, 6], [1, 4, 7], [2, 5]]


def test_bad_pack_size_gets_one_line(cli, tmp_path):
    proc = cli("run", "-m", "hydra/launcher=packed", "hydra.launcher.pack_size=0", "loss=ce,gce",
               f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "lossbench: error: hydra.launcher.pack_size must be an integer >= 1, got 0"]
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(("settings", "message"), [
    ((2.5, "local", None), "hydra.launcher.pack_size must be an integer >= 1, got 2.5"),
    ((4, "mpi", None), "hydra.launcher.executor must be one of local, submitit_local, slurm, got 'mpi'"),
    ((4, "local", [0, 1]), "hydra.launcher.devices is for executor=submitit_local, got executor=local"),
    ((4, "submitit_local", []), "hydra.launcher.devices must be a non-empty list of GPU ids, got []"),
])
def test_bad_launcher_settings(settings, message):
    assert check_settings(*settings) == message
    assert check_settings(4, "submitit_local", [0, 1]) is None


@pytest.fixture(scope="module")
def packed_and_basic(tmp_path_factory):
    """The same 4-job sweep through the packed launcher (W&B offline) and Hydra's basic launcher."""
    root = tmp_path_factory.mktemp("packed")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        sweep(root / "packed", *SWEEP, *FAST, "logger=wandb", "logger.mode=offline")
        sweep(root / "basic", *SWEEP, *FAST, launcher="")
    finally:
        os.chdir(cwd)
    return root


def test_packed_sweep_writes_ordinary_run_directories(packed_and_basic):
    sweep_dir = packed_and_basic / "packed"
    done = summaries(sweep_dir)
    assert sorted(done) == list(range(4))
    assert all(s["status"] == "completed" and s["provenance"]["pack_size"] == 4 for s in done.values())
    assert {(s["loss"], s["noise"]) for s in done.values()} == {
        (loss, noise) for loss in ("ce", "nce_rce") for noise in ("sym20", "sym40")}
    for num in done:
        job = sweep_dir / str(num)
        assert (job / ".hydra" / "config.yaml").exists() and (job / ".hydra" / "overrides.yaml").exists()
        assert [json.loads(x)["epoch"] for x in (job / "metrics.jsonl").read_text().splitlines()] == [1, 2]
        assert (job / "noise.npz").exists() and (job / "model_final.pt").exists()
        assert not (job / "checkpoint.pt").exists() and not (job / "checkpoint.pt.next").exists()
        assert not is_locked(job)  # every member's lock released


def test_packed_sweep_equals_the_basic_launcher(packed_and_basic):
    """Two epochs of four runs, packed and one by one: the same figures to float tolerance."""
    a, b = summaries(packed_and_basic / "packed"), summaries(packed_and_basic / "basic")
    assert sorted(a) == sorted(b)
    for num in a:
        assert a[num].keys() == b[num].keys()  # the summary of a lone run, key for key
        assert a[num]["provenance"].keys() - b[num]["provenance"].keys() == {"pack_size"}
        ja, jb = (sweep_dir / str(num) / "metrics.jsonl" for sweep_dir in
                  (packed_and_basic / "packed", packed_and_basic / "basic"))
        ra, rb = (json.loads(ja.read_text().splitlines()[-1]), json.loads(jb.read_text().splitlines()[-1]))
        assert ra.keys() == rb.keys()
        wa, wb = (sweep_dir / str(num) / "model_final.pt" for sweep_dir in
                  (packed_and_basic / "packed", packed_and_basic / "basic"))
        assert wa.stat().st_size <= 1.2 * wb.stat().st_size  # the member's weights, not the pack's
        for key in ("loss", "noise", "seed", "realized_noise_rate"):
            assert a[num][key] == b[num][key]
        assert a[num]["test_acc"] == pytest.approx(b[num]["test_acc"], abs=1.01 / b[num]["num_test"])
        assert a[num]["test_nll"] == pytest.approx(b[num]["test_nll"], rel=1e-5)


def test_packed_jobs_keep_one_wandb_run_each(packed_and_basic):
    sweep_dir = packed_and_basic / "packed"
    for num, summary in summaries(sweep_dir).items():
        [path] = run_files(sweep_dir / str(num))
        run = read_run(path)
        assert run.exit_code == 0 and run.config["loss"] == summary["loss"]
        assert run.config["noise"] == summary["noise"]
        assert [row["epoch"] for row in run.history] == [1, 2]


def test_report_reads_a_packed_sweep(packed_and_basic, tmp_path):
    runs = tmp_path / "runs.csv"
    main(["report", str(packed_and_basic / "packed"), "--out", str(tmp_path / "t.md"),
          "--runs-csv", str(runs)])
    rows = list(csv.DictReader(runs.open()))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"completed"}


def test_finished_packed_jobs_are_skipped(packed_and_basic, monkeypatch):
    monkeypatch.chdir(packed_and_basic)
    sweep_dir = packed_and_basic / "packed"
    before = {num: (sweep_dir / str(num) / "summary.json").stat().st_mtime_ns for num in range(4)}
    sweep(sweep_dir, *SWEEP, *FAST, "logger=wandb", "logger.mode=offline")
    after = {num: (sweep_dir / str(num) / "summary.json").stat().st_mtime_ns for num in range(4)}
    assert before == after


def test_diverged_member_and_unpackable_jobs(tmp_path, monkeypatch):
    """One job's learning rate makes it diverge: it is marked, its pack goes on; jobs with a robust
    evaluation (not packable) run alone, as ordinary jobs, and the plan says why."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "s"
    sweep(out, "optim.lr=0.1,100000", "attack=none,fgsm", *FAST)
    units = plan_of(out)
    assert [len(u["jobs"]) for u in units if u["packed"]] == [2]
    lone = [u for u in units if not u["packed"]]
    assert len(lone) == 2 and all("robust evaluation" in u["reason"] for u in lone)
    done = {int(p.parent.name): json.loads(p.read_text()) for p in out.glob("*/summary.json")}
    assert sorted((s["config"]["optim"]["lr"], s["attack"], s["status"], "pack_size" in s["provenance"])
                  for s in done.values()) == [
        (0.1, "fgsm", "completed", False), (0.1, "none", "completed", True),
        (100000.0, "fgsm", "diverged", False), (100000.0, "none", "diverged", True)]


def test_plan_refuses_adversarial_detection_and_attacks_from_packs():
    base = {"dataset": {"name": "digits"}, "model": {"name": "mlp"}, "trainer": {}}
    assert packs.unpackable(base) is None
    assert packs.unpackable({**base, "calibrator": {"vector": {"_target_": "x.Vector"}}}) is None
    for group, target, words in (("adversarial", "lossbench.adversarial.training.PGDAT", "adversarial"),
                                 ("attack", "lossbench.adversarial.evaluation.RobustEvaluation", "robust"),
                                 ("detect", "lossbench.detect.recov.ReCoV", "detection")):
        assert packs.unpackable({**base, group: {"_target_": packs.NOT_PACKED[group]}}) is None
        assert words in packs.unpackable({**base, group: {"_target_": target}})
    # losses of another shape (issue 20) run alone; a per-sample loss packs
    assert packs.unpackable({**base, "loss": {"_target_": "lossbench.losses.comp_sum.CrossEntropy"}}) is None
    for target, words in (("lossbench.losses.metric.AnyLoss", "one value per batch"),
                          ("lossbench.losses.learned.LegendreTron", "parameters of its own"),
                          ("lossbench.losses.cce.CutCrossEntropy", "head")):
        assert words in packs.unpackable({**base, "loss": {"_target_": target}})


def test_pack_that_cannot_run_packed_trains_one_by_one(tmp_path, monkeypatch):
    from lossbench.models.packing import NotPackable, PackedModel

    def refuse(self, x, return_features=False):
        raise NotPackable("test: no vmap today")

    monkeypatch.setattr(PackedModel, "probe", refuse)
    monkeypatch.chdir(tmp_path)
    sweep(tmp_path / "s", "loss=ce,gce", *FAST)
    done = summaries(tmp_path / "s")
    assert [done[i]["status"] for i in (0, 1)] == ["completed", "completed"]
    assert "pack_size" not in done[0]["provenance"]


@pytest.mark.slow
def test_killed_packed_sweep_resumes_bit_identically(cli, tmp_path):
    """SIGKILL a packed sweep once every job has a checkpoint, run it again: every job resumes
    and ends exactly as an uninterrupted packed sweep does."""
    args = ("run", "-m", "hydra/launcher=packed", "loss=ce,gce,nce_rce", "noise=sym40", "trainer.epochs=6",
            "model.hidden=[16]", "model.batch_norm=true", "trainer.progress=none")
    cli(*args, f"hydra.sweep.dir={tmp_path / 'straight'}", cwd=tmp_path)
    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    proc = subprocess.Popen([sys.executable, "-m", "lossbench", *args, f"hydra.sweep.dir={killed}"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if len(list(killed.glob("*/checkpoint.pt"))) == 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the sweep ended before it could be killed"
    assert not list(killed.glob("*/summary.json"))
    resumed = cli(*args, f"hydra.sweep.dir={killed}", cwd=tmp_path)
    assert resumed.stdout.count("resumed from") + resumed.stderr.count("resumed from") == 3
    a, b = summaries(tmp_path / "straight"), summaries(killed)
    timing = ("wall_time_s", "train_seconds", "throughput", "provenance", "overrides", "config")
    for num in a:
        for key in a[num]:
            if key not in timing and "seconds" not in key:  # calibrators' fit times too
                assert a[num][key] == b[num][key], (num, key)


@pytest.mark.slow
def test_packs_go_wide_through_submitit(tmp_path, monkeypatch):
    """Two packs (batch sizes 32 and 64) as two submitit jobs on this machine."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "wide"
    sweep(out, "hydra.launcher.executor=submitit_local", "hydra.launcher.submitit.gpus_per_node=0",
          "hydra.launcher.submitit.timeout_min=10", "loss=ce,gce", "trainer.batch_size=32,64",
          "trainer.epochs=1", "model.hidden=[16]", "trainer.progress=none")
    done = summaries(out)
    assert sorted(done) == [0, 1, 2, 3] and all(s["provenance"]["pack_size"] == 2 for s in done.values())
    jobs = [p for p in (out / ".submitit").iterdir() if p.is_dir() and p.name != "%j"]
    assert len(jobs) == 2  # one submitit job per pack


def test_stop_request_checkpoints_every_member_and_the_sweep_resumes(tmp_path, monkeypatch, capsys):
    """A stop request (as SIGTERM makes) in epoch 2: every member checkpoints that batch and ends
    as an interrupted job (exit 143); the same command resumes them to the same summaries."""
    from lossbench.core import signals
    from lossbench.train.checkpoint import load_checkpoint

    monkeypatch.chdir(tmp_path)
    args = ("loss=ce,gce", "model.batch_norm=true", *FAST)
    sweep(tmp_path / "straight", *args)
    real, calls = packed._batch_inputs, {"n": 0}

    def stopping(*a):
        calls["n"] += 1
        if calls["n"] == 20:
            signals.request_stop(15, "test")
        return real(*a)

    stopped = tmp_path / "stopped"
    with monkeypatch.context() as patch:
        patch.setattr(packed, "_batch_inputs", stopping)
        capsys.readouterr()
        with pytest.raises(SystemExit) as ended:
            sweep(stopped, *args)
    assert ended.value.code == 143
    err = capsys.readouterr().err
    assert err.count("stopped (test) at epoch 2, batch") == 2 and "checkpoint saved to" in err
    for num in (0, 1):
        assert not (stopped / str(num) / "summary.json").exists()
        state = load_checkpoint(stopped / str(num) / "checkpoint.pt")
        assert state["epoch"] == 0 and state["partial"]["next"] > 0
    sweep(stopped, *args)
    a, b = summaries(tmp_path / "straight"), summaries(stopped)
    timing = ("wall_time_s", "provenance", "overrides", "config")
    for num in a:
        assert a[num].keys() == b[num].keys()
        for key in a[num]:
            if key not in timing and "seconds" not in key and key != "throughput":
                assert a[num][key] == b[num][key], (num, key)


@pytest.mark.slow
def test_packs_side_by_side_in_forked_workers_equal_packs_one_after_another(tmp_path, monkeypatch):
    """hydra.launcher.workers=2: two packs of two train at once, each in a process forked from the command;
    every job's figures are the same, to the bit, as when the packs train one after another."""
    monkeypatch.chdir(tmp_path)
    sweep(tmp_path / "seq", *SWEEP, *FAST, "hydra.launcher.pack_size=2")
    sweep(tmp_path / "par", *SWEEP, *FAST, "hydra.launcher.pack_size=2", "hydra.launcher.workers=2")
    a, b = summaries(tmp_path / "seq"), summaries(tmp_path / "par")
    assert sorted(a) == sorted(b) == [0, 1, 2, 3]
    for num in a:
        assert b[num]["status"] == "completed" and b[num]["provenance"]["pack_size"] == 2
        for key in ("test_acc", "test_nll", "final_train_clean_acc", "realized_noise_rate"):
            assert a[num][key] == b[num][key], (num, key)
        assert b[num]["provenance"]["num_threads"] == 1
    assert not list((tmp_path / "par").glob(".lossbench-pack-*"))  # the children's result files are gone


def test_workers_are_checked():
    assert check_settings(4, "local", None, 0) == (
        "hydra.launcher.workers must be an integer >= 1 (packs at once here), got 0")
    assert check_settings(4, "slurm", None, 2) == (
        "hydra.launcher.workers is for executor=local, got executor=slurm")
    assert check_settings(4, "local", None, 2) is None

"""Reliable sweeps: resume after SIGKILL, skip finished runs, divergence, corrupt checkpoints,
concurrent sweeps."""

import json
import os
import signal
import subprocess
import sys
import time

from lossbench.io import read_jsonl

IGNORED = {"wall_time_s", "train_seconds", "throughput", "provenance", "overrides", "checkpoint_error"}
ENV = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
SLOW_RUN = ["noise=sym40", "model.dropout=0.2", "trainer.epochs=30", "trainer.batch_size=8",
            "trainer.progress=plain"]


def _strip(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in IGNORED}


def _epochs(path):
    return [{k: v for k, v in r.items() if k not in ("seconds", "train_seconds", "throughput")}
            for r in read_jsonl(path)]


def test_sigkill_then_resume_equals_uninterrupted_run(cli, tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "killed"
    cli("run", f"hydra.run.dir={ref}", *SLOW_RUN, cwd=tmp_path)

    cmd = [sys.executable, "-m", "lossbench", "run", f"hydra.run.dir={out}", *SLOW_RUN]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if len(read_jsonl(out / "metrics.jsonl")) >= 3 and (out / "checkpoint.pt").exists():
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "summary.json").exists()
    done_before = len(read_jsonl(out / "metrics.jsonl"))
    assert 3 <= done_before < 30

    resumed = cli("run", f"hydra.run.dir={out}", *SLOW_RUN, cwd=tmp_path)
    assert "resumed from" in resumed.stdout + resumed.stderr
    a = json.loads((ref / "summary.json").read_text())
    b = json.loads((out / "summary.json").read_text())
    assert _strip(a) == _strip(b)
    assert _epochs(ref / "metrics.jsonl") == _epochs(out / "metrics.jsonl")
    assert not (out / "checkpoint.pt").exists()


def test_corrupt_checkpoint_restarts_from_scratch(cli, tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "corrupt"
    args = ["trainer.epochs=3", "noise=sym20", "trainer.progress=plain"]
    cli("run", f"hydra.run.dir={ref}", *args, cwd=tmp_path)
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"LOSSBENCH-CKPT1\n" + b"0" * 64 + b"\ntruncated garbage")
    proc = cli("run", f"hydra.run.dir={out}", *args, cwd=tmp_path)
    assert "checkpoint unusable, starting over" in proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert "does not match its sha256" in summary["checkpoint_error"]
    assert _strip(summary) == _strip(json.loads((ref / "summary.json").read_text()))


def test_rerun_skips_finished_jobs_and_force_reruns_all(cli, tmp_path):
    sweep = tmp_path / "sweep"
    args = ["run", "-m", "loss=ce,gce", "trainer.epochs=2", "trainer.progress=none",
            f"hydra.sweep.dir={sweep}"]
    cli(*args, cwd=tmp_path)
    first, second = sweep / "0" / "summary.json", sweep / "1" / "summary.json"
    kept = first.stat().st_mtime_ns
    second.unlink()
    proc = cli(*args, cwd=tmp_path)
    assert "already holds a finished run" in proc.stdout + proc.stderr
    assert first.stat().st_mtime_ns == kept
    assert json.loads(second.read_text())["status"] == "completed"
    redone = second.stat().st_mtime_ns
    cli(*args, "trainer.force=true", cwd=tmp_path)
    assert first.stat().st_mtime_ns != kept and second.stat().st_mtime_ns != redone


def test_divergence_is_recorded_and_the_sweep_goes_on(cli, tmp_path):
    sweep = tmp_path / "sweep"
    proc = cli("run", "-m", "optim.lr=0.1,1e10", "trainer.epochs=3", "trainer.progress=none",
               f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0
    ok = json.loads((sweep / "0" / "summary.json").read_text())
    bad = json.loads((sweep / "1" / "summary.json").read_text())
    assert ok["status"] == "completed"
    assert bad["status"] == "diverged" and bad["diverged_epoch"] == 1  # epochs count from 1


def test_failed_job_does_not_stop_the_sweep(cli, tmp_path):
    sweep = tmp_path / "sweep"
    # q=5 passes the override check but fails when the loss is built inside the job
    cli("run", "-m", "loss=gce", "loss.q=0.7,5.0,0.5", "trainer.epochs=2", "trainer.progress=none",
        f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert (sweep / "0" / "summary.json").exists() and (sweep / "2" / "summary.json").exists()
    failure = json.loads((sweep / "1" / "failure.json").read_text())
    assert failure["status"] == "failed" and "q in (0, 1]" in failure["error"]
    assert not (sweep / "1" / "summary.json").exists()


def test_concurrent_sweeps_lose_no_summary(tmp_path):
    def launch(*args):
        return subprocess.Popen([sys.executable, "-m", "lossbench", "run", "-m", *args,
                                 "trainer.epochs=2", "trainer.progress=none"],
                                cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)

    procs = [
        launch("seed=0,1,2", f"hydra.sweep.dir={tmp_path / 'a'}"),
        launch("seed=0,1,2", f"hydra.sweep.dir={tmp_path / 'b'}"),
        launch("seed=0,1,2,3", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
               f"hydra.sweep.dir={tmp_path / 'c'}"),
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    counts = {}
    for name in ("a", "b", "c"):
        summaries = [json.loads(s.read_text()) for s in (tmp_path / name).glob("*/summary.json")]
        assert all(s["status"] == "completed" for s in summaries)
        counts[name] = len(summaries)
    assert counts == {"a": 3, "b": 3, "c": 4}


def test_finished_run_of_another_config_is_not_taken_for_this_one(cli, tmp_path):
    out = tmp_path / "run"
    cli("run", f"hydra.run.dir={out}", "trainer.epochs=2", "trainer.progress=none", cwd=tmp_path)
    # display-only settings do not make it another experiment: skipped
    same = cli("run", f"hydra.run.dir={out}", "trainer.epochs=2", "trainer.progress=plain", cwd=tmp_path)
    assert "already holds a finished run" in same.stdout + same.stderr
    other = cli("run", f"hydra.run.dir={out}", "trainer.epochs=2", "loss=gce", cwd=tmp_path, check=False)
    assert other.returncode == 2
    assert "holds a run of a different configuration (differs in loss._target_" in other.stderr
    assert json.loads((out / "summary.json").read_text())["loss"] == "ce"


def test_checkpoint_of_another_config_is_not_resumed(cli, tmp_path):
    from lossbench.train.checkpoint import load_checkpoint, save_checkpoint

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "lossbench", "run", f"hydra.run.dir={out}", *SLOW_RUN]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "checkpoint.pt").exists():
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["meta"]["experiment"]["noise"]["rate"] == 0.4
    save_checkpoint(out / "checkpoint.pt", state)
    other = cli("run", f"hydra.run.dir={out}", *SLOW_RUN, "noise.rate=0.2", cwd=tmp_path, check=False)
    assert other.returncode == 2
    assert "belongs to a different configuration (differs in experiment.noise.rate" in other.stderr
    assert (out / "checkpoint.pt").exists()

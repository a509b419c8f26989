"""Resume after SIGKILL, damaged metrics.jsonl, corrupt checkpoints, skipping finished runs,
divergence and failures in a sweep (its closing line and exit status)."""

import json
import os
import signal

from lossbench.core.io import read_jsonl


def test_sigkill_then_resume_equals_uninterrupted_run_even_with_damaged_metrics(h, cli, tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "killed"
    args = [*h.KILLABLE, "trainer.epochs=8"]
    cli("run", f"hydra.run.dir={ref}", *args, cwd=tmp_path)

    proc = h.launch("run", f"hydra.run.dir={out}", *args, cwd=tmp_path)
    h.wait_for(h.logged(out, 2), what="two epochs")
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert not (out / "summary.json").exists()
    # damage the per-epoch file from outside: drop its first record and tear the last line
    lines = (out / "metrics.jsonl").read_text().splitlines(keepends=True)
    (out / "metrics.jsonl").write_text("".join(lines[1:])[:-7])

    resumed = cli("run", f"hydra.run.dir={out}", *args, cwd=tmp_path)
    assert "resumed from" in resumed.stdout + resumed.stderr
    assert h.strip(h.summary(ref)) == h.strip(h.summary(out))
    assert h.epochs(ref / "metrics.jsonl") == h.epochs(out / "metrics.jsonl")
    assert not (out / "checkpoint.pt").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_corrupt_checkpoint_restarts_from_scratch(h, cli, tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "corrupt"
    args = ["trainer.epochs=3", "noise=sym20", "model.hidden=[16]", "trainer.progress=plain"]
    cli("run", f"hydra.run.dir={ref}", *args, cwd=tmp_path)
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"LOSSBENCH-CKPT1\n" + b"0" * 64 + b"\ntruncated garbage")
    (out / ".checkpoint.pt.x1y2z3.tmp").write_bytes(b"half a checkpoint")  # a kill during a save
    (out / ".notes.txt.tmp").write_text("not ours")
    proc = cli("run", f"hydra.run.dir={out}", *args, cwd=tmp_path)
    assert "checkpoint unusable, starting over" in proc.stdout + proc.stderr
    assert not (out / ".checkpoint.pt.x1y2z3.tmp").exists()  # our temporary files go ...
    assert (out / ".notes.txt.tmp").exists()  # ... a user's files stay
    done = h.summary(out)
    assert "does not match its sha256" in done["checkpoint_error"]
    assert h.strip(done) == h.strip(h.summary(ref))


def test_rerun_skips_finished_jobs_and_force_reruns_all(h, cli, tmp_path):
    sweep = tmp_path / "sweep"
    args = ["run", "-m", "loss=ce,gce", "trainer.epochs=2", "model.hidden=[16]", "trainer.progress=none",
            f"hydra.sweep.dir={sweep}", h.NUMBERED]
    cli(*args, cwd=tmp_path)
    first, second = sweep / "0" / "summary.json", sweep / "1" / "summary.json"
    kept = first.stat().st_mtime_ns
    second.unlink()
    proc = cli(*args, cwd=tmp_path)
    assert "already holds a finished run" in proc.stderr
    assert "2 completed (1 already finished, skipped)" in proc.stderr
    assert first.stat().st_mtime_ns == kept
    assert json.loads(second.read_text())["status"] == "completed"
    redone = second.stat().st_mtime_ns
    cli(*args, "trainer.force=true", cwd=tmp_path)
    assert first.stat().st_mtime_ns != kept and second.stat().st_mtime_ns != redone


def test_divergence_is_a_result_the_sweep_goes_on_and_exits_0(h, cli, tmp_path):
    sweep = tmp_path / "sweep"
    proc = cli("run", "-m", "optim.lr=0.1,1e10", "trainer.epochs=3", "model.hidden=[16]",
               "trainer.progress=none", f"hydra.sweep.dir={sweep}", h.NUMBERED, cwd=tmp_path)
    assert proc.returncode == 0
    ok, bad = h.summary(sweep / "0"), h.summary(sweep / "1")
    assert ok["status"] == "completed"
    assert bad["status"] == "diverged" and bad["diverged_epoch"] == 1  # epochs count from 1
    [closing] = [ln for ln in proc.stderr.splitlines() if ln.startswith(f"lossbench: sweep {sweep}")]
    assert "2 jobs: 1 completed, 1 diverged (a result" in closing and "0 failed" in closing
    warned = (sweep / "1" / "run.log").read_text()
    assert "diverged at epoch 1 (loss not finite)" in warned and "trainer.grad_clip" in warned


def test_failed_job_does_not_stop_the_sweep_and_the_sweep_says_so(h, cli, tmp_path):
    """Unreadable data files are known only inside the job (missing ones are refused before the sweep
    starts): the sweep goes on, counts it, points at its failure.json, and exits 1."""
    sweep = tmp_path / "sweep"
    h.unreadable_mnist(tmp_path / "no-data")
    proc = cli("run", "-m", "dataset=digits,mnist,digits", f"data_dir={tmp_path / 'no-data'}",
               "trainer.epochs=2", "model.hidden=[16]", "trainer.progress=none", f"hydra.sweep.dir={sweep}",
               h.NUMBERED, cwd=tmp_path, check=False)
    assert proc.returncode == 1, proc.stderr
    assert (sweep / "0" / "summary.json").exists() and (sweep / "2" / "summary.json").exists()
    failure = json.loads((sweep / "1" / "failure.json").read_text())
    assert failure["status"] == "failed" and failure["phase"] == "setup" and "unreadable" in failure["error"]
    assert not (sweep / "1" / "summary.json").exists()
    closing = [ln for ln in proc.stderr.splitlines() if ln.startswith("lossbench: sweep ")]
    assert len(closing) == 1
    assert "3 jobs: 2 completed, 0 diverged" in closing[0]
    assert f"1 failed: {sweep / '1' / 'failure.json'}" in closing[0]
    assert not list(sweep.glob(".lossbench-sweep-*")), "the ledger is removed"


def test_finished_run_of_another_config_is_not_taken_for_this_one(h, cli, tmp_path):
    out = tmp_path / "run"
    cli("run", f"hydra.run.dir={out}", "trainer.epochs=2", "model.hidden=[16]", "trainer.progress=none",
        cwd=tmp_path)
    # display-only settings do not make it another experiment: skipped
    same = cli("run", f"hydra.run.dir={out}", "trainer.epochs=2", "model.hidden=[16]",
               "trainer.progress=plain", cwd=tmp_path)
    assert "already holds a finished run" in same.stderr
    before = h.snapshot(out)
    other = cli("run", f"hydra.run.dir={out}", "trainer.epochs=2", "model.hidden=[16]", "loss=gce",
                cwd=tmp_path, check=False)
    assert other.returncode == 2
    assert "holds a run of a different configuration (differs in loss._target_" in other.stderr
    assert h.snapshot(out) == before


def test_checkpoint_of_another_config_is_not_resumed(h, cli, tmp_path):
    from lossbench.train.checkpoint import load_checkpoint

    out = tmp_path / "run"
    args = [*h.KILLABLE, "trainer.epochs=30"]
    proc = h.launch("run", f"hydra.run.dir={out}", *args, cwd=tmp_path)
    h.wait_for(h.logged(out, 1), what="a checkpoint")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["meta"]["experiment"]["noise"]["rate"] == 0.4
    other = cli("run", f"hydra.run.dir={out}", *args, "noise.rate=0.2", cwd=tmp_path, check=False)
    assert other.returncode == 2
    assert "belongs to a different configuration (differs in experiment.noise.rate" in other.stderr
    assert (out / "checkpoint.pt").exists()
    assert len(read_jsonl(out / "metrics.jsonl")) >= 1


def test_a_packs_pending_checkpoint_is_cleaned_up_when_another_launcher_resumes(h, cli, tmp_path):
    """A packed sweep killed between its two checkpoint phases leaves checkpoint.pt.next; the same job
    resumed by the basic launcher (or alone) resumes from its checkpoint.pt and leaves nothing stale."""
    out = tmp_path / "run"
    args = [*h.KILLABLE, "trainer.epochs=3"]
    proc = h.launch("run", f"hydra.run.dir={out}", *args, cwd=tmp_path)
    h.wait_for(h.logged(out, 1), what="a first epoch")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    (out / "checkpoint.pt.next").write_bytes((out / "checkpoint.pt").read_bytes())
    cli("run", f"hydra.run.dir={out}", *args, cwd=tmp_path)
    assert h.summary(out)["status"] == "completed"
    assert not (out / "checkpoint.pt.next").exists() and not (out / "checkpoint.pt").exists()


def test_a_resume_under_another_thread_count_warns_and_the_summary_says_so(h, cli, tmp_path):
    """Bit-identical CPU results need the same thread count: a resume with another one is accepted, said
    in one warning line, and recorded in the summary (resumed_differently); the same count adds nothing."""
    out, same = tmp_path / "run", tmp_path / "same"
    args = [*h.KILLABLE, "trainer.epochs=3"]
    for folder in (out, same):
        proc = h.launch("run", f"hydra.run.dir={folder}", *args, "trainer.threads=1", cwd=tmp_path)
        h.wait_for(h.logged(folder, 1), what="a first epoch")
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    resumed = cli("run", f"hydra.run.dir={out}", *args, "trainer.threads=2", cwd=tmp_path)
    warnings = [ln for ln in (resumed.stdout + resumed.stderr).splitlines() if "not bit-identical" in ln]
    assert len(warnings) == 1 and "num_threads 1 -> 2" in warnings[0], resumed.stdout + resumed.stderr
    assert h.summary(out)["resumed_differently"] == ["num_threads 1 -> 2"]
    cli("run", f"hydra.run.dir={same}", *args, "trainer.threads=1", cwd=tmp_path)
    assert "resumed_differently" not in h.summary(same)

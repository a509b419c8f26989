"""SIGTERM, SIGINT and preemption: checkpoint at the next batch boundary, a one-line status that
says how to resume, the conventional exit status, and a sweep's parent that stops its workers."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lossbench.core import signals
from lossbench.core.io import read_jsonl
from lossbench.core.startup import STOPPED
from lossbench.train.checkpoint import load_checkpoint


def _stop_run(h, tmp_path, signum, epochs=12):
    out = tmp_path / "run"
    proc = h.launch("run", f"hydra.run.dir={out}", *h.KILLABLE, f"trainer.epochs={epochs}", cwd=tmp_path)
    h.wait_for(h.logged(out, 1), what="a first epoch")
    assert proc.poll() is None, "the run finished before it could be stopped"
    os.kill(proc.pid, signum)
    stdout, stderr = proc.communicate(timeout=300)
    return out, proc.returncode, stderr


def test_sigterm_checkpoints_mid_epoch_and_the_printed_command_resumes_bit_for_bit(h, cli, tmp_path):
    ref = tmp_path / "ref"
    cli("run", f"hydra.run.dir={ref}", *h.KILLABLE, "trainer.epochs=12", cwd=tmp_path)
    out, code, stderr = _stop_run(h, tmp_path, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM == 143
    [line] = h.status_lines(stderr)
    assert "stopped (received SIGTERM) at epoch " in line
    assert f"checkpoint saved to {out / 'checkpoint.pt'}" in line
    assert "Traceback" not in stderr
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["partial"] is not None, "saved at a batch boundary, inside the epoch"
    assert not (out / "summary.json").exists() and not (out / "failure.json").exists()

    command = shlex.split(line.split("resume with: ", 1)[1])
    assert command[:2] == ["lossbench", "run"]
    resumed = cli(*command[1:], cwd=tmp_path)
    assert "resumed from" in resumed.stdout + resumed.stderr
    assert h.strip(h.summary(ref)) == h.strip(h.summary(out))
    assert h.epochs(ref / "metrics.jsonl") == h.epochs(out / "metrics.jsonl")


def test_sigint_stops_the_same_way_with_status_130(h, tmp_path):
    out, code, stderr = _stop_run(h, tmp_path, signal.SIGINT)
    assert code == 130
    [line] = h.status_lines(stderr)
    assert "stopped (received SIGINT)" in line and "resume with: lossbench run" in line
    assert "KeyboardInterrupt" not in stderr
    assert load_checkpoint(out / "checkpoint.pt")["partial"] is not None


def test_preemption_signal_chains_to_submitits_handler(monkeypatch):
    """Where submitit handles USR2 (its preemption and time-out signal), lossbench takes it first
    and keeps submitit's handler to call once the checkpoint is written (submitit then requeues)."""
    calls = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: calls.append(signum))
    signals.reset()
    try:
        with signals.handle_signals():
            os.kill(os.getpid(), signal.SIGUSR2)
            assert signals.stop_requested() == signal.SIGUSR2
            assert calls == [], "not handed over before the checkpoint"
            signals.chained_handler(signal.SIGUSR2)(signal.SIGUSR2, None)
            assert calls == [signal.SIGUSR2]
        assert signal.getsignal(signal.SIGUSR2) is not signals._handler
    finally:
        signal.signal(signal.SIGUSR2, previous)
        signals.reset()


def test_without_submitit_usr2_is_left_alone_and_a_second_signal_stops_the_command_at_once():
    signals.reset()
    previous_usr2, previous_int = signal.getsignal(signal.SIGUSR2), signal.getsignal(signal.SIGINT)
    try:
        with signals.handle_signals(command=True):
            assert signal.getsignal(signal.SIGUSR2) is previous_usr2
            os.kill(os.getpid(), signal.SIGINT)
            assert signals.stop_requested() == signal.SIGINT
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
        assert signal.getsignal(signal.SIGINT) is previous_int
    finally:
        signals.reset()


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return kids


def _joblib_sweep(h, tmp_path):
    sweep = tmp_path / "sweep"
    proc = h.launch("run", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1,2,3",
                    f"hydra.sweep.dir={sweep}", h.NUMBERED, *h.KILLABLE, "trainer.epochs=40", cwd=tmp_path)
    h.wait_for(lambda: all(len(read_jsonl(sweep / j / "metrics.jsonl")) >= 1 for j in ("0", "1")),
               what="two jobs")
    assert proc.poll() is None
    return sweep, proc, _children(proc.pid)


def _logged(sweep):
    return [len(read_jsonl(sweep / j / "metrics.jsonl")) for j in ("0", "1")]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.slow
def test_sigterm_to_a_joblib_sweep_stops_its_workers_and_not_started_jobs_do_not_start(h, tmp_path):
    sweep, proc, workers = _joblib_sweep(h, tmp_path)
    os.kill(proc.pid, signal.SIGTERM)
    time.sleep(3)
    frozen = _logged(sweep)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 143
    assert _logged(sweep) == frozen, "no epoch after the stop"
    # the workers exit after saving; on a loaded machine that can outlast the parent by seconds
    h.wait_for(lambda: not [w for w in workers if _alive(w)], timeout=60, what="the workers to exit")
    stopped = [ln for ln in h.status_lines(stderr) if "stopped (the sweep was stopped)" in ln]
    assert len(stopped) == 2
    [closing] = [ln for ln in h.status_lines(stderr) if ln.startswith("lossbench: sweep ")]
    assert "4 jobs: 0 completed" in closing and "2 interrupted and 2 not started" in closing
    for job in ("0", "1"):
        assert load_checkpoint(sweep / job / "checkpoint.pt")["partial"] is not None
    assert not (sweep / "2").exists() and not (sweep / "3").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.slow
def test_a_killed_joblib_parent_leaves_no_worker_training(h, tmp_path):
    sweep, proc, workers = _joblib_sweep(h, tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    def loky_alive():
        alive = []
        for w in workers:
            try:
                if _alive(w) and "loky" in Path(f"/proc/{w}/cmdline").read_text():
                    alive.append(w)
            except OSError:
                continue
        return alive

    h.wait_for(lambda: not loky_alive(), timeout=60, what="the workers to exit")
    frozen = _logged(sweep)
    time.sleep(2)
    assert _logged(sweep) == frozen
    for job in ("0", "1"):
        assert load_checkpoint(sweep / job / "checkpoint.pt")["partial"] is not None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.slow
def test_submitit_preemption_checkpoints_requeues_and_resumes(h, tmp_path):
    """submitit_local runs the job as SLURM would: USR2 to the job -> lossbench checkpoints inside
    the epoch -> submitit requeues -> the new attempt resumes there and completes."""
    sweep = tmp_path / "sweep"
    proc = h.launch("run", "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
                    f"hydra.sweep.dir={sweep}", h.NUMBERED, *h.KILLABLE, "trainer.epochs=6", cwd=tmp_path)
    h.wait_for(h.logged(sweep / "0", 1), what="a first epoch")

    def job_pid():
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if b"submitit.core._submit" in cmdline.read_bytes():
                    return int(cmdline.parent.name)
            except OSError:
                continue
        return None

    pid = job_pid()
    assert pid is not None
    os.kill(pid, signal.SIGUSR2)
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert h.summary(sweep / "0")["status"] == "completed"
    logs = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*.err"))
    logs += "".join(p.read_text() for p in (sweep / ".submitit").rglob("*.out"))
    assert "stopped (received SIGUSR2)" in logs and "Requeued" in logs
    assert "resumed from" in logs and ", batch " in logs
    assert len(read_jsonl(sweep / "0" / "metrics.jsonl")) == 6


# -------------------------------------------------------------- no traceback, whenever the signal comes


def _no_traceback(stderr: str, own_lines_only: bool = True) -> None:
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    if own_lines_only:
        assert all(ln.startswith("lossbench:") for ln in stderr.splitlines() if ln.strip()), stderr


def _after_lossbench_began(h, args: list[str], cwd: Path) -> subprocess.Popen:
    """`python -m lossbench ARGS`, returned once lossbench's own first line has run: Python's
    import-time log (stderr) has passed ``lossbench.core.startup``, which the command imports first.
    Before that moment CPython itself is starting, where no program's handler is in place yet."""
    env = {**h.ENV, "PYTHONPROFILEIMPORTTIME": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "lossbench", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = False
    for line in iter(proc.stderr.readline, ""):
        if seen:  # a line after startup's: its stop_at_once() has run
            return proc
        seen = line.rstrip().endswith(" lossbench.core.startup")
    raise AssertionError("lossbench.core.startup was never imported")


def test_ctrl_c_before_the_command_writes_stops_at_once_in_one_line_with_status_130(h, tmp_path):
    """From lossbench's first line until its first write (its modules, torch and numpy importing, the
    config checked): a Ctrl-C ends the command at once with one line and status 130, and nothing is
    on disk. A KeyboardInterrupt there was dropped by CPython in an import callback (the run went on
    to status 0) or left numpy half-imported (status 1 or 2)."""
    for delay in (0.0, 0.05, 0.15, 0.3, 0.5, 0.8):
        out = tmp_path / f"run{delay}"
        proc = _after_lossbench_began(h, ["run", f"hydra.run.dir={out}", *h.KILLABLE], tmp_path)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGINT)
        stderr = proc.stderr.read()
        proc.wait(timeout=300)
        stderr = "\n".join(ln for ln in stderr.splitlines() if not ln.startswith("import time:"))
        assert proc.returncode == 130, (delay, stderr)
        _no_traceback(stderr)
        if STOPPED in stderr:  # stopped before the run began: it wrote nothing
            assert not out.exists(), (delay, sorted(out.rglob("*")))


@pytest.mark.parametrize("moment", ["startup", "quick-second", "late-second"])
def test_ctrl_c_at_any_moment_ends_in_one_line_and_status_130(h, tmp_path, moment):
    """While lossbench imports and checks, a quick second Ctrl-C during a run, or one while the command
    exits: status 130, lossbench's own lines only."""
    out = tmp_path / "run"
    proc = h.launch("run", f"hydra.run.dir={out}", *h.KILLABLE, "trainer.epochs=12", cwd=tmp_path)
    if moment == "startup":
        time.sleep(1.0)
    else:
        h.wait_for(h.logged(out, 1), what="a first epoch")
    os.kill(proc.pid, signal.SIGINT)
    time.sleep({"startup": 0.05, "quick-second": 0.05, "late-second": 0.6}[moment])
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    _no_traceback(stderr)


@pytest.mark.parametrize("command", ["evaluate", "report"])
def test_ctrl_c_in_evaluate_and_report_leaves_no_half_written_file(h, cli, tmp_path, command):
    out = tmp_path / "run"
    cli("run", f"hydra.run.dir={out}", "trainer.epochs=1", "model.hidden=[8]", "trainer.progress=none",
        cwd=tmp_path)
    target = tmp_path / ("eval.json" if command == "evaluate" else "table.md")
    source = out if command == "evaluate" else tmp_path
    proc = h.launch(command, str(source), "--out", str(target), cwd=tmp_path)
    time.sleep(1.5)
    os.kill(proc.pid, signal.SIGINT)
    time.sleep(0.05)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    _no_traceback(stderr, own_lines_only=False)  # one that finished first printed its own lines
    assert proc.returncode in (0, 130), stderr  # 0: it had finished before the signal came
    assert not target.exists() or target.stat().st_size > 0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.slow
def test_a_killed_joblib_worker_ends_the_sweep_in_one_line_with_its_closing_line(h, tmp_path):
    """joblib gives up on the whole sweep when one worker dies: lossbench says so in one line, then the
    sweep's closing line, exit status 1, no traceback; rerunning the command resumes."""
    import re

    sweep, proc, _ = _joblib_sweep(h, tmp_path)
    holder = (sweep / "0" / ".lossbench.lock").read_text()
    os.kill(int(re.search(r"pid (\d+)", holder).group(1)), signal.SIGKILL)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr
    _no_traceback(stderr)
    lines = h.status_lines(stderr)
    died = "the sweep stopped: TerminatedWorkerError: a worker process died"
    assert any(died in ln for ln in lines), stderr
    assert lines[-1].startswith(f"lossbench: sweep {sweep}")

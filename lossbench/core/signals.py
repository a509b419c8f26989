"""Stopping cleanly: SIGTERM, SIGINT (and a scheduler's preemption signal) become a request that
the trainer honours at the next batch boundary, in this process and in a sweep's worker processes.

- The first SIGTERM or SIGINT sets a flag; the trainer checkpoints at its next batch boundary
  and the job ends with a one-line status saying how to resume; the command exits 128 + signal
  (143 for SIGTERM, 130 for SIGINT). In the command's own process a second signal stops at once.
- submitit's preemption signal (``SUBMITIT_PREEMPT_SIGNAL``, USR2 by default): lossbench
  checkpoints first, then hands over to submitit's handler, which requeues the job.
- A sweep whose jobs run in child processes (joblib, submitit_local): the parent, when
  signalled, writes a STOP file into the sweep's ledger; workers poll it (and whether the
  parent is still alive, which covers a parent killed with SIGKILL) at batch boundaries,
  twice a second, and stop the same way. Jobs not yet started do not start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lossbench.core.startup import writing_begins

LEDGER_ENV = "LOSSBENCH_SWEEP_LEDGER"
# HYDRA_FULL_ERROR as the user set it (the command sets Hydra's own to 1, so that what a launcher or a
# sweeper raises reaches lossbench's one-line handler instead of Hydra's traceback printer)
FULL_ERROR_ENV = "LOSSBENCH_FULL_ERROR"
CLI_PID_ENV = "LOSSBENCH_CLI_PID"
CLI_HOST_ENV = "LOSSBENCH_CLI_HOST"
STOP_FILE = "STOP"
POLL_S = 0.5


class Interrupted(BaseException):  # noqa: N818 -- like KeyboardInterrupt: not an error, not caught by `except Exception`
    """Training stopped on request; ``checkpoint`` holds its state (None when there was nowhere to save)."""

    def __init__(self, signum: int, where: str, checkpoint: Path | None) -> None:
        super().__init__(f"stopped by {signal_name(signum)} {where}")
        self.signum = signum
        self.where = where
        self.checkpoint = checkpoint


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def preempt_signal() -> int | None:
    """submitit's preemption/time-out signal (USR2 unless SUBMITIT_PREEMPT_SIGNAL says otherwise)."""
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)


@dataclass
class _State:
    signum: int | None = None
    reason: str = ""
    is_command: bool = False  # the process the user started: a second signal stops it at once
    stop_file: Path | None = None  # a parent of child-process jobs writes it when signalled
    watch_file: Path | None = None  # a worker polls it
    watch_pid: int | None = None  # a worker polls whether this process (the command) lives
    next_poll: float = 0.0
    orphaned: bool = False  # the command this worker served is gone
    chained: dict[int, Callable] = field(default_factory=dict)


_STATE = _State()


def full_error() -> bool:
    """Whether the user asked for full tracebacks (HYDRA_FULL_ERROR=1)."""
    return os.environ.get(FULL_ERROR_ENV, os.environ.get("HYDRA_FULL_ERROR")) == "1"


def reset() -> None:
    """Forget any stop request (tests; a fresh command)."""
    global _STATE
    _STATE = _State()


def request_stop(signum: int, reason: str) -> None:
    if _STATE.signum is None:
        _STATE.signum, _STATE.reason = signum, reason
        if _STATE.stop_file is not None:
            with contextlib.suppress(OSError):
                _STATE.stop_file.parent.mkdir(parents=True, exist_ok=True)
                _STATE.stop_file.write_text(f"{reason}\n")


def stop_requested() -> int | None:
    """The signal that asked this process to stop, or None. Cheap: called at every batch boundary."""
    if _STATE.signum is None and (_STATE.watch_file is not None or _STATE.watch_pid is not None):
        now = time.monotonic()
        if now >= _STATE.next_poll:
            _STATE.next_poll = now + POLL_S
            if _STATE.watch_file is not None and _STATE.watch_file.exists():
                request_stop(signal.SIGTERM, "the sweep was stopped")
            elif _STATE.watch_pid is not None and not _alive(_STATE.watch_pid):
                _STATE.orphaned = True
                request_stop(signal.SIGTERM, f"the sweep's command (pid {_STATE.watch_pid}) is gone")
    return _STATE.signum


def orphaned() -> bool:
    """Whether this worker's command is gone (nobody will give it another job: it should exit)."""
    if _STATE.watch_pid is not None and not _STATE.orphaned and not _alive(_STATE.watch_pid):
        _STATE.orphaned = True
    return _STATE.orphaned


def stop_reason() -> str:
    return _STATE.reason


def chained_handler(signum: int) -> Callable | None:
    """The handler lossbench replaced for ``signum`` (submitit's requeue), to call after checkpointing."""
    return _STATE.chained.get(signum)


def _handler(signum: int, frame: object) -> None:
    if _STATE.signum is not None:
        if _STATE.is_command and signum in (signal.SIGINT, signal.SIGTERM):
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        return
    request_stop(signum, f"received {signal_name(signum)}")


@contextlib.contextmanager
def handle_signals(command: bool = False) -> Iterator[None]:
    """Catch SIGTERM, SIGINT (and submitit's preemption signal where submitit handles it) while inside.

    Idempotent (a job inside the command keeps the command's handlers); the
    previous handlers come back on exit. Outside the main thread nothing is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    writing_begins()  # a run writes from here on: Ctrl-C becomes the stop request below
    if command:
        _STATE.is_command = True
    wanted = [signal.SIGTERM, signal.SIGINT]
    preempt = preempt_signal()
    if preempt is not None:
        current = signal.getsignal(preempt)
        if callable(current) and current is not _handler:  # submitit's handler: chain it
            wanted.append(preempt)
    previous = {}
    for signum in wanted:
        current = signal.getsignal(signum)
        if current is _handler:
            continue
        previous[signum] = current
        if signum == preempt:
            _STATE.chained[signum] = current
        signal.signal(signum, _handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)
            _STATE.chained.pop(signum, None)


def quiet_exit() -> None:
    """In a process whose command was asked to stop: ignore further SIGINT and SIGTERM while the
    interpreter exits (they were answered; one landing in an exit hook prints a traceback)."""
    if _STATE.signum is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def default_signals() -> None:
    """Give SIGINT and SIGTERM their usual meaning back (the parent of a SLURM sweep: Ctrl-C detaches)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def stop_children_via(ledger: Path) -> None:
    """In the parent of child-process jobs: a stop request also writes ``ledger/STOP``."""
    _STATE.stop_file = Path(ledger) / STOP_FILE
    if _STATE.signum is not None:
        request_stop(_STATE.signum, _STATE.reason)


def watch_sweep() -> None:
    """In a sweep's job: poll the ledger's STOP file and the command's liveness when this job runs
    on the command's machine as its descendant (joblib, submitit_local; not SLURM)."""
    ledger, pid, host = (os.environ.get(k) for k in (LEDGER_ENV, CLI_PID_ENV, CLI_HOST_ENV))
    if not (ledger and pid and pid.isdigit()) or int(pid) == os.getpid() or host != socket.gethostname():
        return
    if not _is_ancestor(int(pid)):
        return
    _STATE.watch_file = Path(ledger) / STOP_FILE
    _STATE.watch_pid = int(pid)
    _STATE.next_poll = 0.0


def sweep_stopped() -> bool:
    """Whether the ledger of this job's sweep says stop (checked before a job starts)."""
    ledger = os.environ.get(LEDGER_ENV)
    return bool(ledger) and (Path(ledger) / STOP_FILE).exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process that nobody has reaped yet is a zombie: gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return os.getppid() if pid == os.getpid() else None


def _is_ancestor(pid: int, depth: int = 6) -> bool:
    current: int | None = os.getpid()
    for _ in range(depth):
        current = _parent_of(current) if current is not None else None
        if current is None or current <= 1:
            return False
        if current == pid:
            return True
    return False

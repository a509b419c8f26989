"""Hydra callbacks: a sweep's ledger of job outcomes, its closing line and its exit status.

Each job of a multirun records how it ended (completed, diverged, failed, refused,
interrupted, not started; and whether it was skipped as already finished) as one small file
in ``<sweep dir>/.lossbench-sweep-<id>/``, wherever it ran (in this process, a joblib worker,
a SLURM node). When the sweep ends, the parent counts them in one line, points at each
failure.json, removes the ledger, and sets the command's exit status: 0 when every job
completed or diverged (a diverged run is a result: its summary.json records it), 1 when any
job failed, was refused or did not report, 128 + signal when the sweep was interrupted.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from lossbench.core import signals
from lossbench.core.io import write_json_atomic

# The outcome of the last sweep of this process: (exit status, closing line), for the CLI.
LAST_SWEEP: dict[str, Any] = {}
SHOWN = 5  # failure pointers spelled out in the closing line


def launcher_kind(config: DictConfig) -> str:
    """'inprocess' (basic), 'children' (joblib, submitit_local, packed with workers > 1: jobs are our
    child processes),
    or 'remote' (SLURM and other cluster launchers)."""
    target = str(config.hydra.launcher.get("_target_", ""))
    if target.endswith("BasicLauncher"):
        return "inprocess"
    if target.endswith("PackedLauncher"):  # lossbench's: its executor says where the jobs run
        executor = str(config.hydra.launcher.get("executor", "local"))
        if executor == "local" and int(config.hydra.launcher.get("workers", 1) or 1) > 1:
            return "children"  # packs in forked processes
        return {"local": "inprocess", "submitit_local": "children"}.get(executor, "remote")
    if "joblib" in target.lower() or target.endswith("LocalLauncher"):
        return "children"
    return "remote"


class SweepLedger(Callback):
    """Registered in config.yaml under ``hydra.callbacks``."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        ledger = Path(str(config.hydra.sweep.dir)).absolute() / f".lossbench-sweep-{uuid.uuid4().hex[:12]}"
        ledger.mkdir(parents=True, exist_ok=True)
        os.environ[signals.LEDGER_ENV] = str(ledger)
        os.environ[signals.CLI_PID_ENV] = str(os.getpid())
        os.environ[signals.CLI_HOST_ENV] = socket.gethostname()
        kind = launcher_kind(config)
        if kind == "children":
            signals.stop_children_via(ledger)
        elif kind == "remote":
            signals.default_signals()  # Ctrl-C stops waiting; the cluster's jobs go on
        LAST_SWEEP.clear()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        ledger_env = os.environ.pop(signals.LEDGER_ENV, None)
        if not ledger_env:
            return
        ledger = Path(ledger_env)
        status, line = tally(ledger, Path(str(config.hydra.sweep.dir)))
        shutil.rmtree(ledger, ignore_errors=True)
        LAST_SWEEP.update(status=status, line=line)
        print(line, file=sys.stderr, flush=True)


def record_outcome(job_num: int | str, outcome: dict) -> None:
    """In a job of a multirun: leave ``outcome`` (status, run_dir, ...) in the sweep's ledger."""
    ledger = os.environ.get(signals.LEDGER_ENV)
    if not ledger or not Path(ledger).is_dir():
        return
    try:
        write_json_atomic(Path(ledger) / f"{job_num}.json", outcome)
    except OSError:  # a full disk must not turn a finished job into a failed one
        pass


def tally(ledger: Path, sweep_dir: Path) -> tuple[int, str]:
    """(exit status, closing line) from the outcomes in ``ledger``."""
    outcomes: dict[int, dict] = {}
    for path in ledger.glob("*.json"):
        try:
            outcomes[int(path.stem)] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    count = {k: 0 for k in ("completed", "diverged", "failed", "refused", "interrupted", "not_started")}
    skipped = 0
    failures, refused = [], []
    for num in sorted(outcomes):
        o = outcomes[num]
        status = o.get("status", "failed")
        count[status] = count.get(status, 0) + 1
        skipped += bool(o.get("skipped"))
        if status == "failed":
            failures.append(o.get("failure") or o.get("run_dir", "?"))
        elif status == "refused":
            refused.append(o.get("run_dir", "?"))
    missing = (max(outcomes) + 1 - len(outcomes)) if outcomes else 0
    total = len(outcomes) + missing
    done = f"{count['completed']} completed"
    parts = [done + (f" ({skipped} already finished, skipped)" if skipped else "")]
    parts.append(f"{count['diverged']} diverged (a result, recorded in summary.json; not a failure)")
    parts.append(f"{count['failed']} failed" + (": " + _listing(failures) if failures else ""))
    if refused:
        parts.append(f"{len(refused)} refused (the directory holds another configuration or is busy): "
                     + _listing(refused))
    stopped = count["interrupted"] + count["not_started"]
    if stopped:
        parts.append(f"{count['interrupted']} interrupted and {count['not_started']} not started "
                     "(rerun the same command to resume)")
    if missing:
        parts.append(f"{missing} gave no report (killed?)")
    line = f"lossbench: sweep {sweep_dir}: {total} jobs: " + ", ".join(parts)
    if stopped:  # a signal that came after every job had trained does not change how the sweep went
        return 128 + int(signals.stop_requested() or 15), line
    return (1 if count["failed"] or refused or missing else 0), line


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")

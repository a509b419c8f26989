"""Helpers for the fault-injection suite: runs to kill, directory snapshots, waiting."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lossbench.core.io import read_jsonl

ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1",
       "HYDRA_FULL_ERROR": "0"}
# digits, a 16-unit MLP, batches of 8: about 150 steps per epoch, long enough to interrupt inside one
KILLABLE = ["noise=sym40", "model.hidden=[16]", "model.dropout=0.2", "optim.lr=0.05", "trainer.batch_size=8",
            "trainer.progress=none"]
TIMING = {"seconds", "train_seconds", "throughput"}
# a sweep's run folders numbered 0, 1, ... (the default names them by the settings the sweep varies)
NUMBERED = "hydra.sweep.subdir=${hydra.job.num}"


def unreadable_mnist(data_dir: Path) -> Path:
    """A data_dir whose MNIST files exist but are empty: the config checks pass (the files are there),
    and the job fails when it reads them, inside the sweep."""
    raw = Path(data_dir) / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        for kind in ("images-idx3", "labels-idx1"):
            (raw / f"{prefix}-{kind}-ubyte").write_bytes(b"")
    return Path(data_dir)
NOT_COMPARED = {"wall_time_s", "train_seconds", "throughput", "provenance", "overrides", "checkpoint_error"}


def strip(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in NOT_COMPARED and "seconds" not in k}


def summary(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())


def epochs(path: Path) -> list[dict]:
    """metrics.jsonl without its timings."""
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_jsonl(path)]


def snapshot(root: Path) -> dict:
    """Everything below ``root``: path -> (kind, mode, size, mtime_ns, sha256 of the content)."""
    out = {}
    root = Path(root)
    if not root.exists():
        return out
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        out[str(path.relative_to(root))] = ("d" if path.is_dir() else "f", st.st_mode, st.st_size,
                                            st.st_mtime_ns, digest)
    return out


def launch(*args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    """`python -m lossbench ARGS` in the background, output captured as text."""
    return subprocess.Popen([sys.executable, "-m", "lossbench", *args], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for(condition: Callable[[], bool], timeout: float = 300, what: str = "the condition") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def logged(run_dir: Path, n: int = 1) -> Callable[[], bool]:
    """True once ``run_dir`` logged ``n`` epochs and holds a checkpoint."""
    run_dir = Path(run_dir)
    return lambda: len(read_jsonl(run_dir / "metrics.jsonl")) >= n and (run_dir / "checkpoint.pt").exists()


def status_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith("lossbench:")]


@pytest.fixture(scope="session")
def h():
    """These helpers, as a namespace for the tests of this folder (h.launch, h.snapshot, ...)."""
    return sys.modules[__name__]

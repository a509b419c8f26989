"""Shared fixtures: where the shared data lives, and running `lossbench` in tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import forked_cli
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LOSSBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The torchvision-layout data folder beside the checkout (../shared/data)."""
    if not (SHARED_DATA / "MNIST").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


# LOSSBENCH_TESTS_SUBPROCESS=1: every command in a fresh interpreter instead of a fork (support/forked_cli.py)
FRESH_INTERPRETER = os.environ.get("LOSSBENCH_TESTS_SUBPROCESS") == "1"


def _lossbench(*args: str, cwd: Path, env: dict | None = None, check: bool = True,
              timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m lossbench ARGS` in a process of its own (W&B offline, plain progress).

    The process is forked from one that has imported torch, relplot and Hydra already
    (support/forked_cli.py), which saves about 10 s of CPU a command.
    """
    full_env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true",
                "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0", **(env or {})}
    command = [sys.executable, "-m", "lossbench", *args]
    if FRESH_INTERPRETER:
        proc = subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    else:
        code, out, err = forked_cli.run(list(args), cwd, full_env, timeout)
        proc = subprocess.CompletedProcess(command, code, out, err)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"lossbench {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
        )
    return proc


@pytest.fixture
def cli():
    """``cli(*args, cwd=..., check=True)``: run the lossbench command in a subprocess."""
    return _lossbench


@pytest.fixture(scope="session")
def cli_session():
    """``cli`` for fixtures wider than one test (a sweep that several tests read)."""
    return _lossbench


@pytest.fixture
def run_once(tmp_path):
    """``run_once(*overrides, name="run")``: one `lossbench run` into tmp_path/name.

    Returns (run directory, summary dict or None, completed process).
    """

    def go(*overrides: str, name: str = "run", check: bool = True, env: dict | None = None):
        out = tmp_path / name
        proc = _lossbench("run", f"hydra.run.dir={out}", "trainer.progress=plain", *overrides,
                          cwd=tmp_path, check=check, env=env)
        summary_path = out / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
        return out, summary, proc

    return go


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long end-to-end tests (marked ``slow``) first, so that with ``-n auto`` no worker is
    left with one of them while the others are idle (the same order in every worker)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)

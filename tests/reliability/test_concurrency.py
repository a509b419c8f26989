"""Several commands on one run directory: a lock per directory, unique temporary names."""

from __future__ import annotations

import json

import pytest

from lossbench.core.io import read_jsonl
from lossbench.lifecycle.run_folder import DirectoryBusy, RunLock, is_locked


def test_a_busy_directory_waits_or_says_who_holds_it(tmp_path):
    first = RunLock(tmp_path)
    first.acquire()
    first.describe_holder()
    assert is_locked(tmp_path)
    second = RunLock(tmp_path)
    with pytest.raises(DirectoryBusy, match=r"lossbench pid \d+ on .+ since "):
        second.acquire(wait=False)
    told = []
    with pytest.raises(DirectoryBusy):  # a stop request while waiting gives up
        second.acquire(on_wait=told.append, abort=lambda: bool(told))
    assert len(told) == 1 and "lossbench pid" in told[0]
    first.release()
    assert not is_locked(tmp_path)
    assert (tmp_path / ".lossbench.lock").read_text() == "", "empty again at rest"
    second.acquire(wait=False)
    second.release()


@pytest.mark.slow
def test_two_identical_sweeps_into_one_directory_run_each_job_once(h, tmp_path):
    sweep = tmp_path / "sweep"
    args = ["run", "-m", "seed=0,1,2", "trainer.epochs=3", "model.hidden=[16]", "trainer.progress=none",
            f"hydra.sweep.dir={sweep}", h.NUMBERED]
    procs = [h.launch(*args, cwd=tmp_path) for _ in range(2)]
    errs = []
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        errs.append(err)
    for job in ("0", "1", "2"):
        assert json.loads((sweep / job / "summary.json").read_text())["status"] == "completed"
        assert [r["epoch"] for r in read_jsonl(sweep / job / "metrics.jsonl")] == [1, 2, 3]
        assert not (sweep / job / "failure.json").exists()
        assert not [p.name for p in (sweep / job).iterdir() if p.name.endswith(".tmp")]
    said = "\n".join(errs)
    # each job ran once: the other command waited for it, or found it finished
    assert said.count("already holds a finished run") == 3
    for err in errs:
        [closing] = [ln for ln in h.status_lines(err) if ln.startswith("lossbench: sweep ")]
        assert "3 jobs: 3 completed" in closing


@pytest.mark.slow
def test_concurrent_sweeps_in_other_directories_lose_no_summary(h, tmp_path):
    procs = [
        h.launch("run", "-m", "seed=0,1,2", "trainer.epochs=2", "trainer.progress=none",
                 f"hydra.sweep.dir={tmp_path / 'a'}", cwd=tmp_path),
        h.launch("run", "-m", "seed=0,1,2,3", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                 "trainer.epochs=2", "trainer.progress=none", f"hydra.sweep.dir={tmp_path / 'c'}",
                 cwd=tmp_path),
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    for name, n in (("a", 3), ("c", 4)):
        summaries = [json.loads(s.read_text()) for s in (tmp_path / name).glob("*/summary.json")]
        assert len(summaries) == n and all(s["status"] == "completed" for s in summaries)

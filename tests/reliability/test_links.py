"""Links inside a run or sweep folder never make lossbench write outside it.

A run folder whose own entries (the lock, the log, ``.hydra`` and its files, checkpoint, summary,
metrics, weights, ...) are links, or are folders, FIFOs where lossbench writes a file, is refused in
one line before anything is written; and every writer opens its file without following a link
(``O_NOFOLLOW``), so a link planted after that check is refused too.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from lossbench.cli import main
from lossbench.core.io import (
    LinkRefused,
    NoFollowFileHandler,
    append_jsonl,
    atomic_file,
    ensure_folder,
    write_json_atomic,
    write_text_atomic,
)
from lossbench.lifecycle.run_folder import RunLock, run_folder_problem

# What a run folder holds, each of which a hostile folder may plant as a link (or as a folder).
ENTRIES = [".lossbench.lock", "run.log", ".hydra", ".hydra/config.yaml", ".hydra/hydra.yaml",
           "metrics.jsonl", "checkpoint.pt", "checkpoint.pt.next", "summary.json", "failure.json",
           "noise.npz", "model_final.pt", "wandb"]


@pytest.fixture(scope="module")
def interrupted(cli_session, tmp_path_factory) -> Path:
    """An unfinished run folder (one epoch of two, with its checkpoint)."""
    root = tmp_path_factory.mktemp("links")
    out = root / "run"
    cli_session("run", f"hydra.run.dir={out}", "trainer.progress=none", "trainer.epochs=1",
                "model.hidden=[8]", "trainer.save_weights=both", cwd=root)
    (out / "summary.json").unlink()
    return out


def _plant(run: Path, name: str, kind: str, outside: Path) -> Path:
    """Replace ``run/name`` by a link to ``outside/...`` (existing or dangling), a folder or a FIFO."""
    path = run / name
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    target = outside / name.replace("/", "_")
    if kind == "link":
        if name in (".hydra", "wandb"):
            target.mkdir()
            (target / "victim.txt").write_text("victim\n")
        else:
            target.write_text("victim\n")
        path.symlink_to(target)
    elif kind == "dangling":
        path.symlink_to(target)
    elif kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    return target


KINDS = ["link", "dangling", "folder"]
CASES = [(name, kind) for name in ENTRIES for kind in KINDS
         if not (kind == "folder" and name in (".hydra", "wandb"))]


@pytest.mark.parametrize(("name", "kind"), CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_a_run_folder_with_a_link_or_a_misplaced_folder_is_refused(h, interrupted, tmp_path, capsys,
                                                                  monkeypatch, name, kind):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(interrupted, run)
    outside = tmp_path / "outside"
    outside.mkdir()
    _plant(run, name, kind, outside)
    before, before_outside = h.snapshot(run), h.snapshot(outside)
    with pytest.raises(SystemExit) as exit_info:
        main(["run", f"hydra.run.dir={run}", "trainer.progress=none", "trainer.epochs=2", "model.hidden=[8]",
              "trainer.save_weights=both"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert exit_info.value.code == 2 and len(err) == 1, err
    assert err[0].startswith("lossbench: error: ") and name.split("/")[-1] in err[0]
    assert ("symbolic link" in err[0]) == (kind in ("link", "dangling"))
    assert h.snapshot(run) == before and h.snapshot(outside) == before_outside


def test_a_sweep_folder_whose_job_folder_is_a_link_is_refused(h, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep, outside = tmp_path / "sweep", tmp_path / "outside"
    sweep.mkdir()
    outside.mkdir()
    (sweep / "1").symlink_to(outside)
    (sweep / "multirun.yaml").symlink_to(outside / "multirun.yaml")
    before = h.snapshot(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "-m", f"hydra.sweep.dir={sweep}", "seed=0,1", "trainer.epochs=1"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert exit_info.value.code == 2 and len(err) == 1 and "symbolic link" in err[0], err
    assert h.snapshot(tmp_path) == before


def test_the_job_checks_its_own_folder(tmp_path):
    """Inside the job (a link planted after the command's check, a job of a sweep): the same rule."""
    from types import SimpleNamespace

    from hydra.types import RunMode

    from lossbench.lifecycle.run import _Job

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "0").symlink_to(tmp_path)
    hc = SimpleNamespace(runtime=SimpleNamespace(output_dir=str(sweep / "0"), choices={}),
                         mode=RunMode.MULTIRUN, job=SimpleNamespace(num=0))
    job = _Job.__new__(_Job)
    job.out_dir, job.multirun = sweep / "0", True
    assert "is a symbolic link" in job.folder_problem()
    job.out_dir, job.multirun = tmp_path / "run", False
    (tmp_path / "run").mkdir()
    os.mkfifo(tmp_path / "run" / "checkpoint.pt")
    assert "checkpoint.pt is a FIFO, not a file" in job.folder_problem()
    assert hc  # the namespace a real job would get


# -------------------------------------------------------------- every writer, a link in its place


@pytest.fixture
def victim(tmp_path) -> Path:
    path = tmp_path / "outside" / "victim.txt"
    path.parent.mkdir()
    path.write_text("victim\n")
    return path


def _writers(folder: Path):
    def lock(path):
        RunLock(path.parent).acquire(wait=False)

    def log(path):
        handler = NoFollowFileHandler(path, delay=True)
        logger = logging.getLogger("lossbench-test-links")
        logger.propagate = False
        logger.addHandler(handler)
        try:
            logger.warning("a line")
        finally:
            logger.removeHandler(handler)
            handler.close()

    return {
        ".lossbench.lock": lock,
        "run.log": log,
        "metrics.jsonl": lambda path: append_jsonl(path, {"epoch": 1}),
        "summary.json": lambda path: write_json_atomic(path, {"status": "completed"}),
        "config.yaml": lambda path: write_text_atomic(path, "a: 1\n"),
        "checkpoint.pt": lambda path: atomic_file(path, "wb").__enter__(),
    }


@pytest.mark.parametrize("name", list(_writers(Path("."))))
@pytest.mark.parametrize("dangling", [False, True])
def test_every_writer_refuses_a_link_in_its_place(tmp_path, victim, capsys, name, dangling):
    run = tmp_path / "run"
    run.mkdir()
    target = victim if not dangling else victim.with_name("created.txt")
    (run / name).symlink_to(target)
    write = _writers(run)[name]
    if name == "run.log":  # logging never raises: it says so once, in one line, and keeps nothing
        write(run / name)
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "cannot write the log" in err[0] and "link" in err[0]
    else:
        with pytest.raises(LinkRefused, match="symbolic link"):
            write(run / name)
    assert victim.read_text() == "victim\n"
    assert not victim.with_name("created.txt").exists()
    assert (run / name).is_symlink()


def test_ensure_folder_refuses_a_link_or_a_file(tmp_path):
    (tmp_path / "linked").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(LinkRefused, match="symbolic link"):
        ensure_folder(tmp_path / "linked")
    (tmp_path / "file").write_text("")
    with pytest.raises(LinkRefused, match="not a folder"):
        ensure_folder(tmp_path / "file")
    assert ensure_folder(tmp_path / "new").is_dir()


def test_the_lock_as_a_folder_or_a_fifo_is_refused(tmp_path):
    (tmp_path / ".lossbench.lock").mkdir()
    with pytest.raises(OSError):
        RunLock(tmp_path).acquire(wait=False)
    assert "is a folder, not a file" in run_folder_problem(tmp_path)

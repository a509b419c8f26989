"""A refused run writes nothing: the directory it was pointed at stays byte for byte as it was."""

from __future__ import annotations

import os
import signal

from lossbench.core.io import read_jsonl


def test_a_refused_run_leaves_an_interrupted_directory_byte_identical_and_resumable(h, cli, tmp_path):
    out = tmp_path / "run"
    args = [*h.KILLABLE, "trainer.epochs=6"]
    proc = h.launch("run", f"hydra.run.dir={out}", *args, cwd=tmp_path)
    h.wait_for(h.logged(out, 1), what="a checkpoint")
    os.kill(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=300)
    assert proc.returncode == 143
    before = h.snapshot(out)
    assert ".hydra/config.yaml" in before and "noise.npz" in before

    for other in (["loss=gce"], ["trainer.epochs=7"]):
        refused = cli("run", f"hydra.run.dir={out}", *args, *other, cwd=tmp_path, check=False)
        assert refused.returncode == 2
        lines = [ln for ln in refused.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "belongs to a different configuration" in lines[0], refused.stderr
        assert h.snapshot(out) == before, other

    resumed = cli("run", f"hydra.run.dir={out}", *args, cwd=tmp_path)
    assert "resumed from" in resumed.stdout + resumed.stderr
    assert len(read_jsonl(out / "metrics.jsonl")) == 6


def test_a_sweep_job_refused_for_its_directory_writes_nothing_and_fails_the_sweep(h, cli, tmp_path):
    sweep = tmp_path / "sweep"
    common = ["trainer.epochs=2", "model.hidden=[16]", "trainer.progress=none"]
    cli("run", f"hydra.run.dir={sweep / '1'}", "loss=mae", *common, cwd=tmp_path)
    before = h.snapshot(sweep / "1")
    proc = cli("run", "-m", "loss=ce,gce", *common, f"hydra.sweep.dir={sweep}", h.NUMBERED, cwd=tmp_path,
               check=False)
    assert proc.returncode == 1
    assert h.snapshot(sweep / "1") == before
    assert h.summary(sweep / "0")["status"] == "completed"
    assert any(ln.startswith("lossbench: job 1 refused: ") for ln in proc.stderr.splitlines())
    [closing] = [ln for ln in h.status_lines(proc.stderr) if ln.startswith("lossbench: sweep ")]
    assert "1 completed" in closing
    assert f"1 refused (the directory holds another configuration or is busy): {sweep / '1'}" in closing

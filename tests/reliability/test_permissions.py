"""Every file a run writes gets the user's umask (mkstemp alone would give 0600)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys


def test_summary_failure_and_every_other_file_follow_the_umask(h, tmp_path):
    sweep = tmp_path / "sweep"
    h.unreadable_mnist(tmp_path / "no-data")
    proc = subprocess.run(
        [sys.executable, "-m", "lossbench", "run", "-m", "dataset=digits,mnist",
         f"data_dir={tmp_path / 'no-data'}", h.NUMBERED,
         "trainer.epochs=1", "model.hidden=[16]", "trainer.progress=plain", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, env=h.ENV, capture_output=True, text=True, timeout=600,
        preexec_fn=lambda: os.umask(0o002),
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    files = [p for p in sweep.rglob("*") if p.is_file() and ".lossbench-sweep" not in str(p)]
    names = {p.relative_to(sweep).as_posix() for p in files}
    assert {"0/summary.json", "0/metrics.jsonl", "0/noise.npz", "0/.hydra/config.yaml", "0/.hydra/hydra.yaml",
            "1/failure.json", "0/.lossbench.lock"} <= names
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o664, path
    for path in [p for p in sweep.rglob("*") if p.is_dir()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o775, path

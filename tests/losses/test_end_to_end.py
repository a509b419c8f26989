"""Every loss trains through `lossbench run` on digits with 60% symmetric noise: one multirun."""

from __future__ import annotations

import json
import math

import pytest

from lossbench.losses import LOSSES


@pytest.mark.slow
def test_every_loss_trains_on_noisy_digits(cli, tmp_path):
    names = LOSSES.names()
    sweep = tmp_path / "sweep"
    cli("run", "-m", "loss=" + ",".join(names), "noise=sym60", "trainer.epochs=3",
        "trainer.checkpoint_every=0", f"hydra.sweep.dir={sweep}", "trainer.progress=none", cwd=tmp_path)
    seen = {}
    for job in sorted(p for p in sweep.iterdir() if p.is_dir()):
        assert not (job / "failure.json").exists(), (job / "failure.json").read_text()
        summary = json.loads((job / "summary.json").read_text())
        assert summary["status"] == "completed", (job, summary["status"])
        assert summary["loss_family"] == LOSSES.get(summary["loss"]).family
        rows = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
        assert len(rows) == 3
        for row in rows:
            assert math.isfinite(row["train_loss"]), (summary["loss"], row)
        assert math.isfinite(summary["test_acc"])
        seen[summary["loss"]] = job
    assert sorted(seen) == names

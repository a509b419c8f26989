"""scripts/bench_gpu.py, the one prepared GPU command, runs end to end on the CPU in --smoke mode, so that
it cannot rot between the sessions that have a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_gpu_smoke_runs_every_part_on_cpu(tmp_path):
    out = tmp_path / "bench_gpu.json"
    command = [sys.executable, str(REPO / "scripts" / "bench_gpu.py"), "--smoke", "--device", "cpu",
               "--out", str(out)]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert {r["model"] for r in result["packed"]} == {"cnn8", "resnet18", "cnn4", "lenet5"}
    assert all(r["status"] == "ok" for r in result["packed"])
    assert [p["table"] for p in result["projections"]] == ["APL CIFAR-10", "apl_mnist", "menon_mnist"]
    assert all(p["total_seconds"] > 0 for p in result["projections"])
    settings = [r["setting"] for r in result["single"]]
    assert len(settings) == 5 and settings[-1].startswith("hand-written loop")
    assert "menon_mnist table projection" in proc.stdout

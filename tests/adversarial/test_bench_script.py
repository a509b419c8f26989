"""scripts/bench_adversarial.py runs lossbench in process (its own compose and fit), so it is
checked here against the package's current signatures: one tiny run through its ``run_one``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_adversarial.py"


def test_run_one_trains_attacks_and_reports():
    spec = importlib.util.spec_from_file_location("bench_adversarial", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.run_one(["dataset=digits", "model=mlp", "model.hidden=[16]", "attack=pgd", "attack.size=20",
                         "attack.attack.steps=2", "loss=ce", "adversarial=pgd_at", "adversarial.steps=1",
                         "trainer.epochs=1", "trainer.progress=none", "trainer.checkpoint_every=0",
                         "trainer.device=cpu"])
    assert out["status"] == "completed" and out["epochs"] == 1
    assert 0.0 <= out["test_robust_acc"] <= 1.0 and out["robust_eval_size"] == 20
    assert out["adversarial_settings"]["steps"] == 1


def test_grid_runs_the_chosen_losses_only():
    spec = importlib.util.spec_from_file_location("bench_adversarial", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cells = bench.grid("mnist", [0], None, False, ("comp_sum_tau1.5",))
    assert {key["loss"] for key, _ in cells} == {"comp_sum τ=1.5"}
    assert len(cells) == len(bench.METHODS) * len(bench.NOISES)
    assert all("loss.tau=1.5" in over for _, over in cells)
    assert bench.cli_name("comp_sum τ=0.5 clip=5") == "comp_sum_tau0.5_clip5"
    every = bench.grid("mnist", [0], None, False)
    assert {key["loss"] for key, _ in every} == set(bench.LOSSES)

"""Strategies inside training: `none` changes nothing; the anchor estimate reaches summary.json."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lossbench.data.digits import digits
from lossbench.losses.comp_sum import CrossEntropy
from lossbench.models.mlp import MLP
from lossbench.reweight.base import Reweighter
from lossbench.train.trainer import Trainer

TIMING = {"train_seconds", "throughput", "seconds"}


class Ones(Reweighter):
    """Explicit weights of 1 (x * 1.0 is exact in floating point)."""

    def weights(self, losses, target, index):
        return torch.ones_like(losses)


def _fit(reweight: Reweighter, split) -> tuple[list[dict], dict]:
    trainer = Trainer(epochs=2, batch_size=64, device="cpu", progress="none", checkpoint_every=0)
    torch.manual_seed(0)
    model = MLP(split.input_shape, split.num_classes, hidden=(32,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    history = trainer.fit(model, CrossEntropy(), reweight, optimizer, scheduler, split, seed=0)
    return [{k: v for k, v in r.items() if k not in TIMING} for r in history], model.state_dict()


def test_none_leaves_training_bit_identical():
    split = digits()
    none = instantiate(OmegaConf.create({"_target_": "lossbench.reweight.base.NoReweighting"}))
    ref_history, ref_params = _fit(Reweighter(), split)
    for strategy in (none, Ones()):
        history, params = _fit(strategy, split)
        assert history == ref_history
        assert all(torch.equal(params[k], ref_params[k]) for k in ref_params)


def test_anchor_estimate_on_digits_asym40_is_in_the_summary(run_once):
    out, summary, _ = run_once(
        "noise=asym40", "reweight=forward", "reweight.transition=anchor",
        "reweight.warmup_epochs=5", "trainer.epochs=2",
    )
    assert summary["status"] == "completed"
    assert summary["reweight_transition_source"] == "anchor"
    T = np.array(summary["reweight_transition"])
    assert T.shape == (10, 10) and np.allclose(T.sum(1), 1, atol=1e-4)
    true_T = np.load(out / "noise.npz")["expected_T"]
    assert summary["reweight_transition_mae"] == pytest.approx(np.abs(T - true_T).mean(), abs=1e-5)
    # asym40 on digits flips 2->7, 3->8, 5<->6, 7->1 with probability 0.4. Guessing T = I
    # would score an error of 0.04 and no mass on those five cells (the truth has 2.0)
    assert summary["reweight_transition_mae"] < 0.03
    assert T[2, 7] + T[3, 8] + T[5, 6] + T[6, 5] + T[7, 1] > 1.0

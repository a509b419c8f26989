"""Training on a detection: drop the flagged samples, or down-weight them by score."""

from __future__ import annotations

import pytest
import torch

from lossbench.detect.base import Detection
from lossbench.reweight.base import ReweightContext
from lossbench.reweight.cleaning import DownweightByScore, DropFlagged


def _ctx(detection):
    return ReweightContext(
        split=None, loss=None, true_T=None, device=torch.device("cpu"), seed=0, detection=detection
    )


def _detection(flags, scores):
    return Detection(
        flags=torch.tensor(flags, dtype=torch.bool),
        scores=torch.tensor(scores),
        estimated_rate=sum(flags) / len(flags),
    )


def test_drop_flagged_visits_only_the_unflagged_after_warmup():
    strategy = DropFlagged(warmup_epochs=1)
    strategy.setup(_ctx(_detection([0, 1, 0, 1, 0], [0.0, 0.9, 0.1, 0.8, 0.2])))
    strategy.on_epoch_start(0, 3)
    assert strategy.epoch_indices(5, torch.Generator().manual_seed(0)) is None  # warm-up: everything
    strategy.on_epoch_start(1, 3)
    order = strategy.epoch_indices(5, torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == [0, 2, 4]
    assert strategy.summary() == {"kept": 3}


def test_downweight_is_one_minus_score_to_the_power_with_mean_one():
    strategy = DownweightByScore(power=2.0)
    strategy.setup(_ctx(_detection([0, 1, 0, 1], [0.0, 0.5, 0.75, 1.0])))
    strategy.on_epoch_start(0, 1)
    w = strategy.weights(torch.ones(3), torch.zeros(3, dtype=torch.long), torch.tensor([0, 1, 2]))
    raw = torch.tensor([1.0, 0.25, 0.0625])
    assert torch.allclose(w, raw * 3 / raw.sum())
    assert strategy.weights(torch.ones(1), torch.zeros(1, dtype=torch.long), torch.tensor([3])) is None


def test_without_a_detector_the_strategies_say_what_to_add():
    for strategy in (DropFlagged(), DownweightByScore()):
        with pytest.raises(
            ValueError, match="add detect=recov, detect=fast_recov or detect=confident_learning"
        ):
            strategy.setup(_ctx(None))
    with pytest.raises(ValueError, match="flagged every training sample"):
        DropFlagged().setup(_ctx(_detection([1, 1], [1.0, 1.0])))

"""DONE and SOVR on hand-worked numbers."""

from __future__ import annotations

import math

import pytest
import torch

from lossbench.losses.comp_sum import CrossEntropy
from lossbench.reweight.adversarial import DONE, SOVR, logit_margin, one_vs_rest


def test_done_weights_by_hand():
    # losses [0, ln 2], r = 1: exp -> [1, 2], softmax [1/3, 2/3], mean 1 -> [2/3, 4/3]
    losses, target = torch.tensor([0.0, math.log(2)]), torch.zeros(2, dtype=torch.long)
    index = torch.arange(2)
    w = DONE(r=1.0).weights(losses, target, index)
    assert w.tolist() == pytest.approx([2 / 3, 4 / 3], abs=1e-6)
    # r = 0.5 squares the ratio: [1, 4] -> [0.4, 1.6]
    w = DONE(r=0.5).weights(losses, target, index)
    assert w.tolist() == pytest.approx([0.4, 1.6], abs=1e-6)


def test_done_is_the_maximiser_of_its_kl_regularised_objective():
    torch.manual_seed(0)
    losses, r = torch.rand(7, dtype=torch.float64) * 3, 0.7
    w = DONE(r=r).weights(losses, torch.zeros(7, dtype=torch.long), torch.arange(7)).double() / 7

    def value(p):
        return float((p * losses).sum() - r * (p * (p * 7).log()).sum())

    for _ in range(20):
        other = torch.rand(7, dtype=torch.float64)
        assert value(w) >= value(other / other.sum()) - 1e-12


def test_sovr_switches_the_smallest_margins_to_one_vs_the_rest():
    # z1 = [2, 0, -1], y = 0: margin 2, keeps CE = ln(e^2 + 1 + e^-1) - 2 = 0.169846
    # z2 = [0, 1, 0], y = 0: margin -1, switches: softplus(0) + softplus(1) + softplus(0) = 2.699556
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    target = torch.tensor([0, 0])
    assert logit_margin(logits, target).tolist() == pytest.approx([2.0, -1.0])
    assert one_vs_rest(logits, target)[1].item() == pytest.approx(2.699556, abs=1e-5)
    out = SOVR(fraction=0.5).per_sample_loss(CrossEntropy(), logits, target)
    assert out.tolist() == pytest.approx([0.169846, 2.699556], abs=1e-5)
    assert SOVR(fraction=0.0).per_sample_loss(CrossEntropy(), logits, target).tolist() == pytest.approx(
        [0.169846, 1.551445], abs=1e-5)  # fraction 0: CE for both; CE of z2 = ln(2 + e) = 1.551445


@pytest.mark.parametrize("cls,kwargs,match", [
    (DONE, dict(r=0), "reweight.r must be positive"),
    (SOVR, dict(fraction=1.5), r"reweight.fraction must be in \[0, 1\]"),
])
def test_bad_settings_are_refused(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)

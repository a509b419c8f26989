"""Comp-sum losses: hand-worked values and the identities of Mao, Mohri, Zhong 2023."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lossbench.losses import LOSSES

# Logits log(1), log(2), log(5): p = (1/8, 2/8, 5/8) exactly.
LOG125 = [math.log(1), math.log(2), math.log(5)]
Z = torch.tensor([LOG125, LOG125, [3.0, -1.0, 0.5]])
Y = torch.tensor([2, 0, 1])


def _loss(name, **kw):
    return LOSSES.get(name)(**kw)


def _u(z: np.ndarray, y: int) -> float:
    """u = sum_{y' != y} exp(h_y' - h_y), straight from the paper's definition."""
    return float(sum(math.exp(z[k] - z[y]) for k in range(len(z)) if k != y))


def _phi(u: float, tau: float) -> float:
    return math.log1p(u) if tau == 1 else ((1 + u) ** (1 - tau) - 1) / (1 - tau)


def test_hand_worked_values_on_rational_probabilities():
    # y = 2: u = (1 + 2)/5 = 3/5.  y = 0: u = 2 + 5 = 7.
    ce = _loss("ce")(Z[:2], Y[:2])
    torch.testing.assert_close(ce, torch.tensor([math.log(8 / 5), math.log(8)]))
    sum_exp = _loss("sum_exp")(Z[:2], Y[:2])
    torch.testing.assert_close(sum_exp, torch.tensor([3 / 5, 7.0]))
    comp_mae = _loss("comp_mae")(Z[:2], Y[:2])
    torch.testing.assert_close(comp_mae, torch.tensor([3 / 8, 7 / 8]))
    # tau = 1.5: ((1 + u)^(-1/2) - 1)/(-1/2) = 2 (1 - sqrt(p_y)).
    comp_gce = _loss("comp_gce", tau=1.5)(Z[:2], Y[:2])
    expected = [2 * (1 - math.sqrt(5 / 8)), 2 * (1 - math.sqrt(1 / 8))]
    torch.testing.assert_close(comp_gce, torch.tensor(expected))
    # tau = 0.5: ((1 + u)^(1/2) - 1)/(1/2) = 2 (sqrt(1/p_y) - 1).
    half = _loss("comp_sum", tau=0.5)(Z[:2], Y[:2])
    torch.testing.assert_close(half, torch.tensor([2 * (math.sqrt(8 / 5) - 1), 2 * (math.sqrt(8) - 1)]))


@pytest.mark.parametrize("tau", [0.0, 0.3, 0.5, 1.0, 1.2, 1.5, 1.9, 2.0, 3.0])
def test_comp_sum_matches_the_paper_formula(tau):
    torch.manual_seed(0)
    z = 2 * torch.randn(16, 6)
    y = torch.randint(6, (16,))
    ours = _loss("comp_sum", tau=tau)(z, y)
    ref = [_phi(_u(z[i].double().numpy(), int(y[i])), tau) for i in range(16)]
    torch.testing.assert_close(ours, torch.tensor(ref, dtype=torch.float32), rtol=1e-5, atol=1e-6)


def test_comp_sum_tau_1_is_cross_entropy_to_torch():
    torch.manual_seed(1)
    z, y = 4 * torch.randn(32, 10), torch.randint(10, (32,))
    ref = F.cross_entropy(z, y, reduction="none")
    torch.testing.assert_close(_loss("comp_sum", tau=1.0)(z, y), ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(_loss("ce")(z, y), ref, rtol=0, atol=1e-6)


def test_comp_sum_tau_2_is_one_minus_p_and_half_the_paper_mae():
    torch.manual_seed(2)
    z, y = 3 * torch.randn(32, 10), torch.randint(10, (32,))
    one_minus_p = 1 - z.softmax(1)[torch.arange(32), y]
    torch.testing.assert_close(_loss("comp_sum", tau=2.0)(z, y), one_minus_p)
    torch.testing.assert_close(_loss("comp_mae")(z, y), one_minus_p)
    torch.testing.assert_close(_loss("mae")(z, y), 2 * one_minus_p)
    torch.testing.assert_close(_loss("mae", scale=1.0)(z, y), one_minus_p)


def test_named_members_are_comp_sum_instances():
    torch.manual_seed(3)
    z, y = 3 * torch.randn(32, 10), torch.randint(10, (32,))
    torch.testing.assert_close(_loss("sum_exp")(z, y), _loss("comp_sum", tau=0.0)(z, y))
    torch.testing.assert_close(_loss("comp_gce", tau=1.7)(z, y), _loss("gce", q=0.7)(z, y))
    torch.testing.assert_close(_loss("comp_gce", tau=1.3)(z, y), _loss("gce", q=0.3)(z, y))


def test_sum_exp_tail_is_linear_and_finite():
    # p_y = e^-40: the exact value 1/p_y - 1 ~ 2.4e17 is replaced past 1e7 by the tangent in -log p_y.
    z = torch.tensor([[0.0, 40.0]], requires_grad=True)
    out = _loss("sum_exp")(z, torch.tensor([0]))
    x, x_cap = 40.0 + math.log1p(math.exp(-40.0)), math.log(1e7)
    expected = (1e7 - 1) + 1e7 * (x - x_cap)
    assert out.item() == pytest.approx(expected, rel=1e-5)
    out.sum().backward()
    assert torch.isfinite(z.grad).all()


def test_guard_binds_past_1e7_and_null_gives_the_exact_formula():
    # u = e^20 (p_y = 1/(1 + e^20)): exactly 1/p_y - 1 = e^20 = 4.85e8; the guard's tangent gives 4.9e7.
    z = torch.tensor([[0.0, 20.0]], dtype=torch.float64)
    y = torch.tensor([0])
    exact = _loss("sum_exp", guard=None)(z, y).item()
    assert exact == pytest.approx(math.exp(20.0), rel=1e-12)
    guarded = _loss("sum_exp")(z, y).item()
    x, x_cap = math.log1p(math.exp(20.0)), math.log(1e7)
    assert guarded == pytest.approx((1e7 - 1) + 1e7 * (x - x_cap), rel=1e-12)
    assert guarded == pytest.approx(4.9e7, rel=0.01)
    # Below the guard the two agree; comp_sum takes the same option (tau = 0.5: guard at 1/p_y = 1e14).
    z = torch.tensor([[0.0, 5.0], [1.0, -1.0]], dtype=torch.float64)
    y = torch.tensor([0, 0])
    torch.testing.assert_close(_loss("sum_exp")(z, y), _loss("sum_exp", guard=None)(z, y), rtol=0, atol=0)
    p = z.softmax(1)[:, 0]
    torch.testing.assert_close(_loss("comp_sum", tau=0.5, guard=None)(z, y), (p.pow(-0.5) - 1) / 0.5)

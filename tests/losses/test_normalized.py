"""Normalized, active-passive and active-negative losses: hand-worked values and symmetry."""

from __future__ import annotations

import math

import pytest
import torch

from lossbench.losses import LOSSES

# Logits log(1), log(2), log(5): p = (1/8, 2/8, 5/8) exactly; labels 2 and 0.
P = [1 / 8, 2 / 8, 5 / 8]
Z = torch.tensor([[math.log(v) for v in (1, 2, 5)]] * 2)
Y = torch.tensor([2, 0])
LABELS = [2, 0]


def _loss(name, **kw):
    return LOSSES.get(name)(**kw)


def _close(out, expected, **kw):
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float32), **kw)


def _random(n=50, c=10, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, c, generator=g), torch.randint(c, (n,), generator=g)


def _fl(p, gamma):
    return -((1 - p) ** gamma) * math.log(p)


def _nce(y):
    return math.log(P[y]) / sum(math.log(p) for p in P)


def _nfl(y, gamma=0.5):
    return _fl(P[y], gamma) / sum(_fl(p, gamma) for p in P)


def _nnce(y, min_prob=1e-7):
    a = -math.log(min_prob)
    return 1 - (a + math.log(P[y])) / sum(a + math.log(p) for p in P)


def _nnfl(y, gamma=0.5, min_prob=1e-7):
    a = _fl(min_prob, gamma)
    return 1 - (a - _fl(P[y], gamma)) / sum(a - _fl(p, gamma) for p in P)


def test_nce_hand_worked():
    # y = 2: log(5/8) / (log(1/8) + log(2/8) + log(5/8)) = log(5/8) / log(10/512).
    _close(_loss("nce")(Z, Y), [math.log(5 / 8) / math.log(10 / 512), math.log(1 / 8) / math.log(10 / 512)])
    _close(_loss("nce")(Z, Y), [_nce(y) for y in LABELS])


def test_nfl_ngce_nmae_hand_worked():
    _close(_loss("nfl")(Z, Y), [_nfl(y) for y in LABELS])
    _close(_loss("nfl", gamma=2.0)(Z, Y), [_nfl(y, 2.0) for y in LABELS])
    ngce = [(1 - P[y] ** 0.7) / (3 - sum(p**0.7 for p in P)) for y in LABELS]
    _close(_loss("ngce")(Z, Y), ngce)
    _close(_loss("nmae")(Z, Y), [3 / 8 / 2, 7 / 8 / 2])
    _close(_loss("nmae", scale=0.5)(Z, Y), [3 / 8 / 4, 7 / 8 / 4])


def test_apl_combinations_hand_worked():
    rce = [4 * (1 - P[y]) for y in LABELS]
    mae = [2 * (1 - P[y]) for y in LABELS]
    _close(_loss("nce_rce")(Z, Y), [_nce(y) + r for y, r in zip(LABELS, rce, strict=True)])
    _close(_loss("nce_mae")(Z, Y), [_nce(y) + m for y, m in zip(LABELS, mae, strict=True)])
    _close(_loss("nfl_rce")(Z, Y), [_nfl(y) + r for y, r in zip(LABELS, rce, strict=True)])
    _close(_loss("nfl_mae")(Z, Y), [_nfl(y) + m for y, m in zip(LABELS, mae, strict=True)])
    a = math.log(1e-4)
    _close(_loss("nce_rce", alpha=10.0, beta=0.1, A=a)(Z, Y),
           [10 * _nce(y) - 0.1 * a * (1 - P[y]) for y in LABELS])
    _close(_loss("nce_mae", mae_scale=1.0)(Z, Y), [_nce(y) + (1 - P[y]) for y in LABELS])


def test_anl_hand_worked():
    _close(_loss("anl_ce")(Z, Y), [5 * _nce(y) + 5 * _nnce(y) for y in LABELS])
    _close(_loss("anl_fl")(Z, Y), [5 * _nfl(y) + 5 * _nnfl(y) for y in LABELS])
    # With min_prob = 0.2 the 1/8 class is clamped to 0.2.
    clamped = [0.2, 2 / 8, 5 / 8]
    a = -math.log(0.2)
    nnce = [1 - (a + math.log(clamped[y])) / sum(a + math.log(p) for p in clamped) for y in LABELS]
    _close(_loss("anl_ce", alpha=0.0, beta=1.0, min_prob=0.2)(Z, Y), nnce)


def test_detached_focal_weights_change_the_gradient_not_the_value():
    z, y = _random(n=8)
    z1, z2 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    out1 = _loss("nfl")(z1, y)
    out2 = _loss("nfl", detach_weight=True)(z2, y)
    torch.testing.assert_close(out1, out2)
    out1.sum().backward()
    out2.sum().backward()
    assert not torch.allclose(z1.grad, z2.grad)


@pytest.mark.parametrize(("name", "kwargs", "constant"), [
    ("nce", {}, lambda c: 1.0),
    ("nfl", {}, lambda c: 1.0),
    ("nfl", {"gamma": 2.0}, lambda c: 1.0),
    ("ngce", {}, lambda c: 1.0),
    ("ngce", {"q": 0.3}, lambda c: 1.0),
    ("nmae", {}, lambda c: 1.0),
    ("nce_rce", {}, lambda c: 1.0 + 4 * (c - 1)),
    ("nce_mae", {}, lambda c: 1.0 + 2 * (c - 1)),
    ("nfl_rce", {}, lambda c: 1.0 + 4 * (c - 1)),
    ("nfl_mae", {}, lambda c: 1.0 + 2 * (c - 1)),
    ("anl_ce", {}, lambda c: 5.0 + 5.0 * (c - 1)),
    ("anl_fl", {}, lambda c: 5.0 + 5.0 * (c - 1)),
])
def test_symmetric_losses_sum_to_a_constant_over_labels(name, kwargs, constant):
    loss = _loss(name, **kwargs)
    for c in (3, 10):
        z, _ = _random(c=c, seed=c)
        total = sum(loss(z, torch.full((50,), k)) for k in range(c))
        torch.testing.assert_close(total, torch.full((50,), float(constant(c))), rtol=1e-5, atol=1e-5)

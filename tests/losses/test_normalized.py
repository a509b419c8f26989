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
    _close(_loss("nce", scale=10.0)(Z, Y), [10 * _nce(y) for y in LABELS])  # APL's MNIST setting


def _apl_code_ngce(z: torch.Tensor, y: torch.Tensor, q: float) -> torch.Tensor:
    """The APL code's NormalizedGeneralizedCrossEntropy per sample, from its maths: p clamped to [1e-7, 1]."""
    p = z.double().softmax(1).clamp(1e-7, 1.0)
    p_y = p[torch.arange(len(y)), y]
    return (1 - p_y**q) / (z.shape[1] - p.pow(q).sum(1))


def test_ngce_min_prob_reproduces_the_apl_code_clamp():
    z = torch.tensor([[0.0, -30.0, 5.0, -60.0], [2.0, 1.0, 0.0, -1.0]], dtype=torch.float64)
    y = torch.tensor([2, 0])
    code = _apl_code_ngce(z, y, 0.1)
    torch.testing.assert_close(_loss("ngce", min_prob=1e-7)(z, y), code, rtol=1e-12, atol=0)
    exact = _loss("ngce")(z, y)
    # p = e^-35, e^-65 add 0.03, 0.001 to the denominator instead of 0.2 each: the value moves by > 10%
    assert abs(exact[0] - code[0]) / code[0] > 0.1
    torch.testing.assert_close(exact[1], code[1], rtol=1e-12, atol=0)  # no p below 1e-7: no difference


def _ngce(y, q, probs=P):
    return (1 - probs[y] ** q) / (len(probs) - sum(p**q for p in probs))


def test_nfl_ngce_nmae_hand_worked():
    _close(_loss("nfl", scale=1.0)(Z, Y), [_nfl(y) for y in LABELS])
    _close(_loss("nfl", scale=1.0, gamma=2.0)(Z, Y), [_nfl(y, 2.0) for y in LABELS])
    _close(_loss("nfl")(Z, Y), [10 * _nfl(y) for y in LABELS])  # default scale 10 (APL CIFAR-10, sym)
    _close(_loss("ngce", q=0.7)(Z, Y), [_ngce(y, 0.7) for y in LABELS])
    _close(_loss("ngce")(Z, Y), [_ngce(y, 0.1) for y in LABELS])  # default q 0.1 (APL CIFAR-10)
    _close(_loss("ngce", q=0.1, scale=10.0)(Z, Y), [10 * _ngce(y, 0.1) for y in LABELS])
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


def test_ngce_combinations_hand_worked():
    mae = [2 * (1 - P[y]) for y in LABELS]
    rce = [4 * (1 - P[y]) for y in LABELS]
    _close(_loss("ngce_mae")(Z, Y), [_ngce(y, 0.1) + m for y, m in zip(LABELS, mae, strict=True)])
    _close(_loss("ngce_rce")(Z, Y), [_ngce(y, 0.1) + r for y, r in zip(LABELS, rce, strict=True)])
    # CIFAR-100: q 0.7, alpha 10, beta 0.1, the code's A and MAE scale.
    a = math.log(1e-4)
    _close(_loss("ngce_rce", q=0.7, alpha=10.0, beta=0.1, A="code")(Z, Y),
           [10 * _ngce(y, 0.7) - 0.1 * a * (1 - P[y]) for y in LABELS])
    _close(_loss("ngce_mae", q=0.7, alpha=10.0, beta=1.0, mae_scale=1.0)(Z, Y),
           [10 * _ngce(y, 0.7) + (1 - P[y]) for y in LABELS])


def _agce(p, a, q):
    return ((a + 1) ** q - (a + p) ** q) / q


def _aul(p, a, q):
    return ((a - p) ** q - (a - 1) ** q) / q


def test_nce_with_asymmetric_losses_hand_worked():
    # CIFAR-10 defaults (ALFs config.py): NCE + 4 AGCE(6, 1.5), NCE + 4 AUL(6.3, 1.5), NCE + 4 AEL(5).
    _close(_loss("nce_agce")(Z, Y), [_nce(y) + 4 * _agce(P[y], 6, 1.5) for y in LABELS])
    _close(_loss("nce_aul")(Z, Y), [_nce(y) + 4 * _aul(P[y], 6.3, 1.5) for y in LABELS])
    _close(_loss("nce_ael")(Z, Y), [_nce(y) + 4 * math.exp(-P[y] / 5) for y in LABELS])
    # MNIST: alpha 0 switches NCE off.
    _close(_loss("nce_agce", alpha=0.0, beta=1.0, a=4.0, q=0.2)(Z, Y), [_agce(P[y], 4, 0.2) for y in LABELS])
    _close(_loss("nce_aul", alpha=0.0, beta=1.0, a=3.0, q=0.1)(Z, Y), [_aul(P[y], 3, 0.1) for y in LABELS])
    _close(_loss("nce_ael", alpha=0.0, beta=1.0, a=3.5)(Z, Y), [math.exp(-P[y] / 3.5) for y in LABELS])
    # CIFAR-100: NCE + AUL with beta 0.015.
    _close(_loss("nce_aul", alpha=10.0, beta=0.015, a=6.0, q=3.0)(Z, Y),
           [10 * _nce(y) + 0.015 * _aul(P[y], 6, 3) for y in LABELS])


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


def _anl_code_fl(z: torch.Tensor, y: torch.Tensor, alpha=5.0, beta=5.0, gamma=0.5,
                 min_prob=1e-7) -> torch.Tensor:
    """The ANL code's alpha NFL + beta NNFL per sample, from its maths: every focal weight (1 - p)^gamma
    is a constant (computed from detached p); log p is clamped at log(min_prob) in NNFL."""
    logp = z.log_softmax(1)
    w = (1 - logp.detach().exp()) ** gamma
    rows = torch.arange(len(y))
    nfl = (-w * logp)[rows, y] / (-w * logp).sum(1)
    logp_c = logp.clamp_min(math.log(min_prob))
    w_c = (1 - logp_c.detach().exp()) ** gamma
    fl = -w_c * logp_c
    a = -((1 - min_prob) ** gamma) * math.log(min_prob)
    nnfl = 1 - (a - fl[rows, y]) / (z.shape[1] * a - fl.sum(1))
    return alpha * nfl + beta * nnfl


def test_anl_fl_detach_weight_reproduces_the_anl_code_gradient():
    z, y = _random(n=16)
    z = z.double()
    grads = {}
    for key, fn in {
        "code": lambda t: _anl_code_fl(t, y),
        "detached": lambda t: _loss("anl_fl", detach_weight=True)(t, y),
        "formula": lambda t: _loss("anl_fl")(t, y),
    }.items():
        t = z.clone().requires_grad_(True)
        value = fn(t)
        value.sum().backward()
        grads[key] = (value.detach(), t.grad)
    torch.testing.assert_close(grads["detached"][0], grads["code"][0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grads["formula"][0], grads["code"][0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grads["detached"][1], grads["code"][1], rtol=1e-8, atol=1e-12)
    gap = (grads["formula"][1] - grads["code"][1]).norm() / grads["code"][1].norm()
    assert gap > 0.05  # keeping the weights in the gradient is a different method


@pytest.mark.parametrize(("name", "kwargs", "constant"), [
    ("nce", {}, lambda c: 1.0),
    ("nce", {"scale": 10.0}, lambda c: 10.0),
    ("nfl", {}, lambda c: 10.0),
    ("nfl", {"gamma": 2.0, "scale": 1.0}, lambda c: 1.0),
    ("ngce", {}, lambda c: 1.0),
    ("ngce", {"q": 0.3}, lambda c: 1.0),
    ("ngce", {"q": 0.7, "scale": 10.0}, lambda c: 10.0),
    ("ngce_mae", {}, lambda c: 1.0 + 2 * (c - 1)),
    ("ngce_rce", {"A": "code"}, lambda c: 1.0 - math.log(1e-4) * (c - 1)),
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

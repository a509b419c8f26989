"""Robust losses: hand-worked values, limits, symmetry and library cross-checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.spatial.distance import jensenshannon
from sklearn.metrics import brier_score_loss
from timm.loss import SoftTargetCrossEntropy

from lossbench.losses import LOSSES

# Logits log(1), log(2), log(5): p = (1/8, 2/8, 5/8) exactly; labels 2 and 0.
P = [1 / 8, 2 / 8, 5 / 8]
Z = torch.tensor([[math.log(v) for v in (1, 2, 5)]] * 2)
Y = torch.tensor([2, 0])
PY = [5 / 8, 1 / 8]


def _loss(name, **kw):
    return LOSSES.get(name)(**kw)


def _close(out, expected, **kw):
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float32), **kw)


def _random(n=64, c=10, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, c, generator=g), torch.randint(c, (n,), generator=g)


def _p_true(z, y):
    return z.softmax(1)[torch.arange(len(y)), y]


def test_gce_hand_worked():
    # q = 0.5: (1 - sqrt(p_y)) / 0.5
    _close(_loss("gce", q=0.5)(Z, Y), [2 * (1 - math.sqrt(p)) for p in PY])
    _close(_loss("gce")(Z, Y), [(1 - p**0.7) / 0.7 for p in PY])


def test_gce_eps_is_the_re_code_s_offset():
    """eps adds to p_y before the power, (1 - (p_y + eps)^q)/q: the [Re] code of Menon et al. 2020 with
    1e-9 (phuber/loss.py: p += epsilon, then (1 - p ** q) / q), on concrete numbers and near p_y = 0."""
    _close(_loss("gce", q=0.5, eps=0.01)(Z, Y), [2 * (1 - math.sqrt(p + 0.01)) for p in PY])
    z = torch.tensor([[0.0, 40.0], [0.0, 0.0]], dtype=torch.float64)  # p_y = e^-40 ~ 4e-18, and 1/2
    y = torch.tensor([0, 0])
    p = z.softmax(1)[:, 0]
    code = (1 - (p + 1e-9) ** 0.7) / 0.7
    torch.testing.assert_close(_loss("gce", eps=1e-9)(z, y), code, rtol=1e-12, atol=0)
    assert _loss("gce", eps=1e-9)(z, y)[0] != _loss("gce")(z, y)[0]
    with pytest.raises(ValueError, match=r"gce needs eps in \[0, 1\)"):
        _loss("gce", eps=-1e-9)


def test_gce_limits():
    z, y = _random()
    ce = F.cross_entropy(z, y, reduction="none")
    # (1 - p^q)/q = -log p - q (log p)^2 / 2 + ...: the gap shrinks linearly with q.
    for q in (1e-2, 1e-4):
        gap = (_loss("gce", q=q)(z, y) - ce).abs().max().item()
        assert gap <= q * (ce.max().item() ** 2) / 2 * 1.01 + 1e-6
    torch.testing.assert_close(_loss("gce", q=1e-7)(z, y), ce, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(_loss("gce", q=1.0)(z, y), 1 - _p_true(z, y))


def test_gce_min_prob_is_the_apl_code_s_clamp():
    """APL / ANL loss.py: p = clamp(softmax(z), 1e-7, 1), then (1 - p_y^q)/q: a constant with no gradient
    where p_y < 1e-7, the formula elsewhere (hand-worked: p_y = e^-20 / (1 + e^-20) ~ 2.1e-9)."""
    z = torch.tensor([[0.0, -20.0], [0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1, 1])
    out = _loss("gce", q=0.7, min_prob=1e-7)(z, y)
    torch.testing.assert_close(out, torch.tensor([(1 - 1e-7**0.7) / 0.7, (1 - 0.5**0.7) / 0.7],
                                                 dtype=torch.float64))
    out.sum().backward()
    assert z.grad[0].abs().max() == 0 and z.grad[1].abs().min() > 0
    plain = _loss("gce", q=0.7)(z.detach(), y)
    assert plain[0].item() == pytest.approx((1 - (math.exp(-20) / (1 + math.exp(-20))) ** 0.7) / 0.7)


def test_tgce_truncates_below_k_after_warmup():
    loss = _loss("tgce", q=0.7, k=0.5, warmup_fraction=0.25)
    lq_floor = (1 - 0.5**0.7) / 0.7
    # p_y = 5/8 > k keeps Lq; p_y = 1/8 <= k is the constant Lq(k).
    _close(loss(Z, Y), [(1 - (5 / 8) ** 0.7) / 0.7, lq_floor])
    loss.on_epoch_start(0, 100)  # warm-up: plain Lq
    _close(loss(Z, Y), [(1 - p**0.7) / 0.7 for p in PY])
    loss.on_epoch_start(25, 100)
    z = Z.clone().requires_grad_(True)
    out = loss(z, Y)
    _close(out, [(1 - (5 / 8) ** 0.7) / 0.7, lq_floor])
    out[1].backward()
    assert torch.count_nonzero(z.grad) == 0  # a pruned sample carries no gradient


def test_tgce_epoch_schedule_prunes_only_in_pruning_epochs():
    loss = _loss("tgce", schedule="epoch", num_train=4)
    prune_epochs = []
    for epoch in range(30):
        loss.on_epoch_start(epoch, 30)
        if loss.prune_now:
            prune_epochs.append(epoch)
    assert prune_epochs == [10, 20]  # warm-up 1/3 of 30, then every 10 epochs
    loss.on_epoch_start(120 // 3, 120)
    assert loss.prune_now
    pruning = [e for e in range(120) if (loss.on_epoch_start(e, 120) or loss.prune_now)]
    assert pruning == list(range(40, 120, 10))

    lq = [(1 - p**0.7) / 0.7 for p in PY]
    floor = (1 - 0.5**0.7) / 0.7
    index = torch.tensor([1, 3])
    loss.on_epoch_start(0, 30)  # warm-up: nothing pruned yet, plain Lq
    _close(loss(Z, Y, index=index), lq)
    loss.on_epoch_start(10, 30)  # pruning epoch: sample 3 (p_y = 1/8 <= k) is pruned and stays so
    _close(loss(Z, Y, index=index), [lq[0], floor])
    assert loss.keep.tolist() == [True, True, True, False]
    loss.on_epoch_start(11, 30)
    confident = torch.tensor([[0.0, 0.0, 9.0], [9.0, 0.0, 0.0]])  # now both p_y > k ...
    out = loss(confident, Y, index=index)
    _close(out[1:], [floor])  # ... but the stored choice holds until the next pruning epoch
    loss.eval()
    loss.on_epoch_start(20, 30)
    _close(loss(confident, Y, index=index)[1:], [(1 - confident.softmax(1)[1, 0].item() ** 0.7) / 0.7])
    assert not loss.keep[3]  # eval mode: refreshed for this call, not stored
    loss.train()
    loss(confident, Y, index=index)
    assert loss.keep[3]


def test_mae_rce_mse_hand_worked():
    _close(_loss("mae")(Z, Y), [2 * 3 / 8, 2 * 7 / 8])
    _close(_loss("rce")(Z, Y), [4 * 3 / 8, 4 * 7 / 8])
    _close(_loss("rce", A="paper")(Z, Y), [4 * 3 / 8, 4 * 7 / 8])
    _close(_loss("rce", A=math.log(1e-4))(Z, Y), [-math.log(1e-4) * 3 / 8, -math.log(1e-4) * 7 / 8])
    # Brier: y = 2: (1/8)^2 + (2/8)^2 + (3/8)^2 = 14/64; y = 0: (7/8)^2 + (2/8)^2 + (5/8)^2 = 78/64.
    _close(_loss("mse")(Z, Y), [14 / 64, 78 / 64])


def test_rce_code_constant_is_exactly_log_1e_4():
    for name in ("rce", "sce", "nce_rce", "nfl_rce", "ngce_rce"):
        assert _loss(name, A="code").A == math.log(1e-4)  # bit for bit, not -9.2103
        assert _loss(name).A == -4.0
    # The official code: -sum_k clamp(p_k, 1e-7, 1) log(clamp(onehot_k, 1e-4, 1)), per sample.
    z, y = _random()
    p = z.double().softmax(1).clamp(1e-7, 1.0)
    code = -(p * torch.nn.functional.one_hot(y, 10).double().clamp(1e-4, 1.0).log()).sum(1)
    ours = _loss("rce", A="code")(z.double(), y)
    torch.testing.assert_close(ours, code, rtol=0, atol=9.22 * 9 * 1e-7)  # the p clamp: <= 9.21 (C-1) 1e-7
    tidy = p.min(1).values > 1e-7  # where no probability is clamped the two agree to rounding
    torch.testing.assert_close(ours[tidy], code[tidy], rtol=1e-12, atol=1e-12)


def test_mse_mean_over_classes_is_the_anl_code_scale():
    z, y = _random()
    onehot = torch.nn.functional.one_hot(y, 10).float()
    mean = _loss("mse", class_reduction="mean")(z, y)
    torch.testing.assert_close(mean, _loss("mse")(z, y) / 10)
    # The ANL code's MeanSquareError is torch MSELoss (mean over batch and classes) of (p, onehot).
    torch.testing.assert_close(mean.mean(), F.mse_loss(z.softmax(1), onehot))


def test_mse_matches_sklearn_brier_score():
    z, y = _random(n=16, c=5)
    ours = _loss("mse")(z, y)
    p = z.double().softmax(1).numpy()
    ref = [brier_score_loss([int(y[i])], p[i : i + 1], labels=list(range(5)), scale_by_half=False)
           for i in range(16)]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=1e-6)


def test_rce_is_the_reverse_cross_entropy_with_log0_equal_A():
    z, y = _random()
    p = z.softmax(1)
    log_q = torch.full_like(p, -4.0).scatter_(1, y[:, None], 0.0)  # log onehot, log 0 := -4
    torch.testing.assert_close(_loss("rce")(z, y), -(p * log_q).sum(1))


def test_sce_hand_worked():
    expected = [0.1 * -math.log(p) + 1.0 * 4 * (1 - p) for p in PY]
    _close(_loss("sce")(Z, Y), expected)
    _close(_loss("sce", alpha=1.0, beta=0.5, A=-6.0)(Z, Y), [-math.log(p) + 0.5 * 6 * (1 - p) for p in PY])


def test_bootstrap_hand_worked():
    entropy = -sum(p * math.log(p) for p in P)
    _close(_loss("bootstrap_soft")(Z, Y), [-0.95 * math.log(p) + 0.05 * entropy for p in PY])
    # Hard: the arg max is class 2 (p = 5/8) in both rows.
    _close(_loss("bootstrap_hard")(Z, Y), [-math.log(5 / 8), -0.8 * math.log(1 / 8) - 0.2 * math.log(5 / 8)])


def test_bootstrap_soft_is_soft_target_cross_entropy():
    z, y = _random(n=32)
    beta = 0.95
    target = beta * F.one_hot(y, 10).float() + (1 - beta) * z.softmax(1)
    per_sample = torch.stack([SoftTargetCrossEntropy()(z[i : i + 1], target[i : i + 1]) for i in range(32)])
    torch.testing.assert_close(_loss("bootstrap_soft", beta=beta)(z, y), per_sample, rtol=0, atol=1e-6)


def test_taylor_ce_hand_worked_and_limits():
    _close(_loss("taylor_ce")(Z, Y), [(1 - p) + (1 - p) ** 2 / 2 for p in PY])
    _close(_loss("taylor_ce", t=3)(Z, Y), [(1 - p) + (1 - p) ** 2 / 2 + (1 - p) ** 3 / 3 for p in PY])
    z, y = _random(scale=1.0)
    torch.testing.assert_close(_loss("taylor_ce", t=1)(z, y), 1 - _p_true(z, y))
    # -log p = sum_{i >= 1} (1 - p)^i / i: the order-t remainder lies in [0, (1 - p)^(t+1) / ((t + 1) p)].
    zd = z.double()
    p = _p_true(zd, y)
    for t in (5, 50):
        gap = F.cross_entropy(zd, y, reduction="none") - _loss("taylor_ce", t=t).compute(zd, y)
        assert (gap >= -1e-12).all()
        assert (gap <= (1 - p) ** (t + 1) / ((t + 1) * p) + 1e-12).all()


def _js(p: list[float], y: int, pi1: float) -> float:
    """pi1 KL(e_y || m) + (1 - pi1) KL(p || m), m = pi1 e_y + (1 - pi1) p, from the definition."""
    e = [1.0 if k == y else 0.0 for k in range(len(p))]
    m = [pi1 * a + (1 - pi1) * b for a, b in zip(e, p, strict=True)]

    def kl(a, b):
        return sum(x * math.log(x / w) for x, w in zip(a, b, strict=True) if x > 0)

    return pi1 * kl(e, m) + (1 - pi1) * kl(p, m)


@pytest.mark.parametrize("pi1", [0.1, 0.5, 0.9])
def test_gjs_hand_worked(pi1):
    z_norm = -(1 - pi1) * math.log(1 - pi1)
    _close(_loss("gjs", pi_1=pi1)(Z, Y), [_js(P, 2, pi1) / z_norm, _js(P, 0, pi1) / z_norm])


def test_gjs_matches_scipy_jensen_shannon_at_half():
    z, y = _random(n=16)
    p = z.softmax(1).double().numpy()
    onehot = np.eye(10)[y.numpy()]
    js = np.array([jensenshannon(onehot[i], p[i]) ** 2 for i in range(16)])  # natural log
    ref = js / (-0.5 * math.log(0.5))
    np.testing.assert_allclose(_loss("gjs", pi_1=0.5)(z, y).numpy(), ref, rtol=0, atol=1e-6)


def test_gjs_limits_are_ce_and_mae():
    z, y = _random(scale=1.0)
    torch.testing.assert_close(_loss("gjs", pi_1=1e-4)(z, y), F.cross_entropy(z, y, reduction="none"),
                               rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(_loss("gjs", pi_1=1 - 1e-5)(z, y), 1 - _p_true(z, y), rtol=1e-1, atol=1e-1)


def test_asymmetric_losses_hand_worked():
    # Defaults: the authors' standalone CIFAR settings (ALFs config.py).
    _close(_loss("agce")(Z, Y), [((0.6 + 1) ** 0.6 - (0.6 + p) ** 0.6) / 0.6 for p in PY])
    _close(_loss("aul")(Z, Y), [((5.5 - p) ** 3 - (5.5 - 1) ** 3) / 3 for p in PY])
    _close(_loss("ael")(Z, Y), [math.exp(-p / 2.5) for p in PY])
    # MNIST settings; and the passive terms of NCE+AGCE / NCE+AUL.
    _close(_loss("agce", a=4.0, q=0.2)(Z, Y), [((4 + 1) ** 0.2 - (4 + p) ** 0.2) / 0.2 for p in PY])
    _close(_loss("aul", a=3.0, q=0.1)(Z, Y), [((3 - p) ** 0.1 - (3 - 1) ** 0.1) / 0.1 for p in PY])
    _close(_loss("ael", a=3.5)(Z, Y), [math.exp(-p / 3.5) for p in PY])
    _close(_loss("agce", a=6.0, q=1.5)(Z, Y), [((6 + 1) ** 1.5 - (6 + p) ** 1.5) / 1.5 for p in PY])
    _close(_loss("aul", a=6.3, q=1.5)(Z, Y), [((6.3 - p) ** 1.5 - (6.3 - 1) ** 1.5) / 1.5 for p in PY])


def test_asymmetric_losses_vanish_at_p_y_1_and_decrease_in_p_y():
    p = torch.linspace(0.01, 1.0, 50, dtype=torch.float64)
    z = torch.stack([p.log(), (1 - p).clamp_min(1e-300).log()], 1)  # two classes: p_y = p
    y = torch.zeros(50, dtype=torch.long)
    for name in ("agce", "aul", "ael"):
        out = _loss(name)(z, y)
        assert (out[1:] < out[:-1]).all(), name
    torch.testing.assert_close(_loss("agce")(z, y)[-1], torch.tensor(0.0, dtype=torch.float64))
    torch.testing.assert_close(_loss("aul")(z, y)[-1], torch.tensor(0.0, dtype=torch.float64))


@pytest.mark.parametrize(("name", "kwargs", "constant"), [
    ("mae", {}, lambda c: 2 * (c - 1)),
    ("mae", {"scale": 1.0}, lambda c: c - 1),
    ("comp_mae", {}, lambda c: c - 1),
    ("rce", {}, lambda c: 4 * (c - 1)),
    ("rce", {"A": math.log(1e-4)}, lambda c: -math.log(1e-4) * (c - 1)),
    ("taylor_ce", {"t": 1}, lambda c: c - 1),
])
def test_symmetric_losses_sum_to_a_constant_over_labels(name, kwargs, constant):
    loss = _loss(name, **kwargs)
    for c in (3, 10):
        z, _ = _random(n=50, c=c, seed=c)
        total = sum(loss(z, torch.full((50,), k)) for k in range(c))
        torch.testing.assert_close(total, torch.full((50,), float(constant(c))), rtol=1e-5, atol=1e-5)

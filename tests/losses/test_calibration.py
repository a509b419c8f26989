"""Calibration-oriented losses: hand-worked values, identities with CE, library cross-checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from timm.loss import LabelSmoothingCrossEntropy, PolyCrossEntropy, SoftTargetCrossEntropy

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


def _ce(z, y):
    return F.cross_entropy(z, y, reduction="none")


def test_focal_hand_worked():
    _close(_loss("focal")(Z, Y), [-((1 - p) ** 3) * math.log(p) for p in PY])
    _close(_loss("focal", gamma=2.0)(Z, Y), [-((1 - p) ** 2) * math.log(p) for p in PY])


def test_flsd53_picks_gamma_by_p_y():
    # p_y = 5/8 >= 0.2 -> gamma 3; p_y = 1/8 < 0.2 -> gamma 5.
    _close(_loss("flsd53")(Z, Y), [-((3 / 8) ** 3) * math.log(5 / 8), -((7 / 8) ** 5) * math.log(1 / 8)])


def test_focal_weight_gradient_kept_or_detached():
    z, y = _random(n=8)
    z1, z2 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    _loss("focal", gamma=2.0)(z1, y).sum().backward()
    _loss("focal", gamma=2.0, detach_weight=True)(z2, y).sum().backward()
    # Detached: d/dz = (1 - p_y)^gamma * dCE/dz.
    p = z.softmax(1)
    onehot = F.one_hot(y, 10).float()
    w = (1 - p[torch.arange(8), y]) ** 2
    torch.testing.assert_close(z2.grad, w[:, None] * (p - onehot))
    assert not torch.allclose(z1.grad, z2.grad)


def test_label_smoothing_hand_worked():
    mean_nll = -sum(math.log(p) for p in P) / 3
    _close(_loss("label_smoothing")(Z, Y), [-0.9 * math.log(p) + 0.1 * mean_nll for p in PY])
    _close(_loss("nls")(Z, Y), [-1.2 * math.log(p) - 0.2 * mean_nll for p in PY])


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.3, 1.0])
def test_label_smoothing_matches_torch_and_timm(epsilon):
    z, y = _random()
    ours = _loss("label_smoothing", epsilon=epsilon)(z, y)
    torch.testing.assert_close(ours, F.cross_entropy(z, y, reduction="none", label_smoothing=epsilon),
                               rtol=0, atol=1e-6)
    if epsilon < 1.0:
        timm_loss = LabelSmoothingCrossEntropy(smoothing=epsilon)
        per_sample = torch.stack([timm_loss(z[i : i + 1], y[i : i + 1]) for i in range(len(y))])
        torch.testing.assert_close(ours, per_sample, rtol=0, atol=1e-6)


@pytest.mark.parametrize("epsilon", [-0.2, -0.6])
def test_negative_label_smoothing_is_ce_with_the_negative_soft_target(epsilon):
    z, y = _random()
    target = (1 - epsilon) * F.one_hot(y, 10).float() + epsilon / 10
    ours = _loss("nls", epsilon=epsilon)(z, y)
    torch.testing.assert_close(ours, F.cross_entropy(z, target, reduction="none"), rtol=0, atol=1e-5)
    soft_ce = SoftTargetCrossEntropy()
    per_sample = torch.stack([soft_ce(z[i : i + 1], target[i : i + 1]) for i in range(len(y))])
    torch.testing.assert_close(ours, per_sample, rtol=0, atol=1e-5)


def _gls_code(z, y, smooth_rate, wa, wb):
    """The official loss_gls per sample, from its maths: (wa + wb (1 - r)) nll + wb r mean_k(-log p_k)."""
    logp = z.log_softmax(1)
    nll = -logp[torch.arange(len(y)), y]
    return (wa + wb * (1 - smooth_rate)) * nll + wb * smooth_rate * (-logp.mean(1))


@pytest.mark.parametrize(("epsilon", "wa", "wb"), [(-0.2, 0.0, 1.0), (-0.6, 1.0, 1.0), (-2.0, 0.5, 0.3)])
def test_nls_weights_match_the_official_code(epsilon, wa, wb):
    z, y = _random()
    ours = _loss("nls", epsilon=epsilon, wa=wa, wb=wb)(z, y)
    torch.testing.assert_close(ours, _gls_code(z, y, epsilon, wa, wb))


def test_poly1_hand_worked_and_timm():
    _close(_loss("poly1")(Z, Y), [-math.log(p) + (1 - p) for p in PY])
    z, y = _random()
    for epsilon in (-1.0, 1.0, 2.0):
        ref = PolyCrossEntropy(epsilon=epsilon, reduction="none")(z, y)
        torch.testing.assert_close(_loss("poly1", epsilon=epsilon)(z, y), ref, rtol=0, atol=1e-6)


def test_identities_with_cross_entropy():
    z, y = _random()
    ce = _ce(z, y)
    for loss in (
        _loss("focal", gamma=0.0),
        _loss("flsd53", gamma_below=0.0, gamma_above=0.0),
        _loss("poly1", epsilon=0.0),
        _loss("label_smoothing", epsilon=0.0),
        _loss("nls", epsilon=0.0),
        _loss("z_loss_reg", lam=0.0),
        _loss("bias_loss", alpha=0.0, beta=0.0),
    ):
        f = torch.randn(len(y), 4)
        torch.testing.assert_close(loss(z, y, f), ce, rtol=0, atol=1e-6, msg=type(loss).__name__)


def test_squentropy_hand_worked():
    # z = (1, 2, 3), y = 0: CE + (2^2 + 3^2)/2.
    z = torch.tensor([[1.0, 2.0, 3.0]])
    ce = -1.0 + math.log(math.exp(1) + math.exp(2) + math.exp(3))
    assert _loss("squentropy")(z, torch.tensor([0])).item() == pytest.approx(ce + 13 / 2, rel=1e-6)


def test_z_loss_hand_worked_and_invariances():
    # o = (1, 2, 3): mean 2, population std sqrt(2/3); z_y for y = 2 is sqrt(3/2).
    o = torch.tensor([[1.0, 2.0, 3.0]])
    z_y = 1 / math.sqrt(2 / 3)
    expected = math.log1p(math.exp(0.1 * (10 - z_y))) / 0.1
    assert _loss("z_loss")(o, torch.tensor([2])).item() == pytest.approx(expected, rel=1e-6)
    expected = math.log1p(math.exp(2.0 * (1.0 + z_y))) / 2.0  # y = 0 has z_y = -sqrt(3/2)
    assert _loss("z_loss", a=2.0, b=1.0)(o, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-6)
    z, y = _random()
    loss = _loss("z_loss")
    torch.testing.assert_close(loss(3.0 * z - 7.0, y), loss(z, y))  # affine-invariant
    assert torch.isfinite(loss(torch.zeros(2, 4), torch.tensor([0, 1]))).all()


def test_z_loss_reg_hand_worked():
    z = torch.tensor([[0.0, math.log(3.0)]])  # logsumexp = log 4
    expected = math.log(4) + 1e-4 * math.log(4) ** 2
    assert _loss("z_loss_reg")(z, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-6)


def test_encouraging_hand_worked():
    # Full bonus (log_end = 1): -log p + log(1 - p).
    _close(_loss("encouraging", log_end=1.0)(Z, Y), [-math.log(p) + math.log(1 - p) for p in PY])
    # log_end = 0.5: p_y = 5/8 is past it -> tangent log(0.5) - (5/8 - 0.5)/0.5; p_y = 1/8 is not.
    expected = [-math.log(5 / 8) + math.log(0.5) - (5 / 8 - 0.5) / 0.5, -math.log(1 / 8) + math.log(7 / 8)]
    _close(_loss("encouraging", log_end=0.5)(Z, Y), expected)
    _close(_loss("encouraging")(Z, Y), [-math.log(p) + math.log(1 - p) for p in PY])  # 0.75: both below


def _encouraging_code(z, y, log_end=0.75):
    """The official EncouragingLoss per sample, from its maths: bonus log(clamp(1 - p, 1e-5)),
    its tangent past log_end, loss = -(log p_y - bonus_y)."""
    logp = z.log_softmax(1)
    p = logp.exp()
    bonus = torch.log(torch.clamp(1 - p, min=1e-5))
    if log_end != 1.0:
        tangent = 1 / (log_end - 1) * (p - log_end) + math.log(1 - log_end)
        bonus = torch.where(p > log_end, tangent, bonus)
    rows = torch.arange(len(y))
    return -(logp - bonus)[rows, y]


def test_encouraging_bonus_clamp_reproduces_the_official_code():
    z = torch.tensor([[14.0, 0.0, 0.0], [2.0, 1.0, 0.0], [0.0, 3.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 0])
    for log_end in (1.0, 0.75):
        code = _encouraging_code(z, y, log_end)
        ours = _loss("encouraging", log_end=log_end, bonus_clamp=1e-5)(z, y)
        torch.testing.assert_close(ours, code, rtol=1e-12, atol=1e-12)
    # Full bonus at 1 - p_y = 1.7e-6 (first row): the clamp binds; the exact default does not clamp.
    exact = _loss("encouraging", log_end=1.0)(z, y)
    assert exact[0] < _encouraging_code(z, y, 1.0)[0] - 1.0
    torch.testing.assert_close(exact[1:], _encouraging_code(z, y, 1.0)[1:], rtol=1e-12, atol=1e-12)
    # log_end = 0.75: the tangent takes over before the clamp could bind: clamp or not, the same.
    code = _encouraging_code(z, y, 0.75)
    torch.testing.assert_close(_loss("encouraging")(z, y), code, rtol=1e-12, atol=1e-12)


def test_encouraging_bonus_is_continuous_with_continuous_slope_at_log_end():
    loss = _loss("encouraging", log_end=0.6)
    # p_y = sigmoid(t) for two classes; step across p_y = 0.6 in t.
    t0 = math.log(0.6 / 0.4)
    values, slopes = [], []
    for t in (t0 - 1e-3, t0 + 1e-3):
        z = torch.tensor([[t, 0.0]], dtype=torch.float64, requires_grad=True)
        out = loss.compute(z, torch.tensor([0]))
        out.backward()
        values.append(out.item())
        slopes.append(z.grad[0, 0].item())
    assert values[0] == pytest.approx(values[1], abs=1e-2)
    assert slopes[0] == pytest.approx(slopes[1], abs=1e-2)


def test_bias_loss_hand_worked():
    # Feature variances (population, over D): 0, 1, 4 -> scaled v = 0, 1/4, 1.
    features = torch.tensor([[1.0, 1.0], [0.0, 2.0], [-2.0, 2.0]])
    z = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)], [math.log(3.0), 0.0]])
    y = torch.tensor([0, 0, 0])
    ce = [math.log(2), math.log(4), math.log(4 / 3)]
    weights = [math.exp(0.3 * v) - 0.3 for v in (0.0, 0.25, 1.0)]
    expected = [w * c for w, c in zip(weights, ce, strict=True)]
    _close(_loss("bias_loss")(z, y, features), expected)
    # Equal variances: v = 0 for all.
    same = _loss("bias_loss")(z, y, torch.ones(3, 2))
    _close(same, [0.7 * c for c in ce])


def _bias_code(features, z, y, alpha=0.3, beta=0.3, running_min=100000.0, commit="b557bca"):
    """The official BiasLoss ('global') per sample, from its maths: sample variance of the detached
    features, (var - running min) / (max - min), then the weight of the commit: exp(alpha v) - beta at
    b557bca (2022, the current code), exp(beta v) - 1 + alpha at ae6d68d and 40d67b5 (2021)."""
    var = features.detach().flatten(1).var(dim=1)
    lo, hi = var.min(), var.max()
    running_min = min(running_min, lo.item())
    v = (var - running_min) / (hi - lo)
    weight = torch.exp(v * alpha) - beta if commit == "b557bca" else torch.exp(v * beta) - 1.0 + alpha
    return weight * F.cross_entropy(z, y, reduction="none"), running_min


@pytest.mark.parametrize(("weight_form", "commit"), [("paper", "b557bca"), ("code_2021", "40d67b5"),
                                                     ("code", "40d67b5")])
def test_bias_loss_forms_and_global_normalisation_match_the_official_commits(weight_form, commit):
    """weight_form paper with global normalisation and detached features is the current official code
    (b557bca); code_2021 (formerly ``code``) is commits ae6d68d / 40d67b5."""
    loss = _loss("bias_loss", weight_form=weight_form, normalisation="global", detach_weight=True, alpha=0.3,
                 beta=0.2)
    assert loss.hyperparameters()["weight_form"] == ("paper" if weight_form == "paper" else "code_2021")
    g = torch.Generator().manual_seed(0)
    running = 100000.0
    for step, spread in enumerate((1.0, 3.0, 0.5)):  # the third batch's minimum is above the running one
        f = spread * torch.randn(8, 5, generator=g, dtype=torch.float64) + step
        z, y = torch.randn(8, 4, generator=g, dtype=torch.float64), torch.randint(4, (8,), generator=g)
        expected, running = _bias_code(f, z, y, alpha=0.3, beta=0.2, running_min=running, commit=commit)
        torch.testing.assert_close(loss(z, y, f), expected, rtol=1e-12, atol=1e-12)
        assert loss.global_min.item() == pytest.approx(running / (5 / 4), rel=1e-12)  # population variance
    assert "global_min" in loss.state_dict()


def test_bias_loss_forms_by_hand():
    """alpha = beta = 0.3, v = 0.5, CE = log 2: paper exp(0.15) - 0.3 = 0.86183, code_2021 exp(0.15) - 0.7 =
    0.46183, so the two differ by 0.4 CE at every v."""
    features = torch.tensor([[0.0, 0.0], [-1.0, 1.0], [-math.sqrt(2), math.sqrt(2)]])  # var 0, 1, 2
    z, y = torch.zeros(3, 2), torch.zeros(3, dtype=torch.long)
    paper = _loss("bias_loss")(z, y, features)
    code = _loss("bias_loss", weight_form="code_2021")(z, y, features)
    assert paper[1].item() == pytest.approx((math.exp(0.15) - 0.3) * math.log(2), rel=1e-6)
    assert code[1].item() == pytest.approx((math.exp(0.15) - 0.7) * math.log(2), rel=1e-6)
    torch.testing.assert_close(paper - code, torch.full((3,), 0.4 * math.log(2)))


def test_bias_loss_global_minimum_is_stored_only_in_training_mode():
    loss = _loss("bias_loss", normalisation="global").eval()
    z, y = torch.zeros(3, 2), torch.zeros(3, dtype=torch.long)
    loss(z, y, torch.tensor([[1.0, 1.0], [0.0, 2.0], [-2.0, 2.0]]))
    assert loss.global_min.item() == float("inf")
    loss.train()
    out = loss(z, y, torch.tensor([[1.0, 1.0], [0.0, 2.0], [-2.0, 2.0]]))
    assert loss.global_min.item() == 0.0
    # variances 1, 4, 9; the running minimum stays 0
    out2 = loss(z, y, torch.tensor([[0.0, 2.0], [-2.0, 2.0], [-3.0, 3.0]]))
    v = torch.tensor([1.0, 4.0, 9.0]) / 8.0
    _close(out2, ((torch.exp(0.3 * v) - 0.3) * math.log(2)).tolist())
    assert out.shape == (3,)


def test_bias_loss_weight_gradient_kept_or_detached():
    z, y = _random(n=8, c=4)
    z.requires_grad_(True)
    f1 = torch.randn(8, 6, requires_grad=True)
    _loss("bias_loss")(z, y, f1).sum().backward()
    assert f1.grad.abs().sum() > 0
    f2 = f1.detach().clone().requires_grad_(True)
    _loss("bias_loss", detach_weight=True)(z, y, f2).sum().backward()
    assert f2.grad is None or f2.grad.abs().sum() == 0


def test_rescaled_square_hand_worked():
    # z = (2, -1, 0.5), y = 0, k = 1, M = 1: ((2-1)^2 + 1 + 0.25)/3.
    z = torch.tensor([[2.0, -1.0, 0.5]])
    assert _loss("rescaled_square")(z, torch.tensor([0])).item() == pytest.approx(2.25 / 3, rel=1e-6)
    # k = 15, M = 30, y = 1: (15 (-1 - 30)^2 + 4 + 0.25)/3.
    out = _loss("rescaled_square", k=15.0, M=30.0)(z, torch.tensor([1])).item()
    assert out == pytest.approx((15 * 31**2 + 4.25) / 3, rel=1e-6)


def test_logit_norm_hand_worked_and_scale_invariance():
    z = torch.tensor([[3.0, 4.0, 0.0]])  # norm 5 -> z / (0.04 * 5) = (15, 20, 0)
    expected = -15 + math.log(math.exp(15) + math.exp(20) + 1)
    assert _loss("logit_norm")(z, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-5)
    z, y = _random()
    loss = _loss("logit_norm")
    torch.testing.assert_close(loss(4.0 * z, y), loss(z, y), rtol=1e-4, atol=1e-4)

"""LDR-KL and ALDR-KL: the closed form, its limits, and the adaptive lambda."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp, softmax

from lossbench.losses import LOSSES
from lossbench.losses.ldr import adaptive_lambda, ldr_margins


def _loss(name, **kw):
    return LOSSES.get(name)(**kw)


def _random(n=32, c=6, scale=2.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, c, generator=g), torch.randint(c, (n,), generator=g)


def _scores(z: np.ndarray, transform: str) -> np.ndarray:
    if transform == "none":
        return z
    s = np.logaddexp(0.0, z)  # softplus
    return s / s.mean()


def _margins(z: np.ndarray, y: int, delta: float, transform: str) -> np.ndarray:
    s = _scores(z, transform)
    return np.array([s[k] - s[y] + (delta if k != y else 0.0) for k in range(len(z))])


def _ldr(l: np.ndarray, lam: float) -> float:
    """max_q q.l - lam KL(q || uniform), solved in closed form."""
    return lam * (logsumexp(l / lam) - math.log(len(l)))


def test_ldr_kl_hand_worked():
    # Raw logits (0, 1, 2), y = 0, delta = 0.1, lam = 1: l = (0, 1.1, 2.1).
    z = torch.tensor([[0.0, 1.0, 2.0]])
    out = _loss("ldr_kl", score_transform="none")(z, torch.tensor([0]))
    expected = math.log((math.exp(0) + math.exp(1.1) + math.exp(2.1)) / 3)
    assert out.item() == pytest.approx(expected, rel=1e-6)
    # Softplus scores: s = softplus(z) / mean softplus(z).
    sp = [math.log1p(math.exp(v)) for v in (0.0, 1.0, 2.0)]
    s = [v / (sum(sp) / 3) for v in sp]
    l = [0.0, s[1] - s[0] + 0.1, s[2] - s[0] + 0.1]
    expected = 0.5 * math.log(sum(math.exp(v / 0.5) for v in l) / 3)
    assert _loss("ldr_kl", lam=0.5)(z, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("transform", ["softplus_mean", "none"])
@pytest.mark.parametrize("lam", [0.1, 1.0, 10.0])
def test_ldr_kl_matches_the_formula(transform, lam):
    z, y = _random()
    ours = _loss("ldr_kl", lam=lam, score_transform=transform)(z, y)
    ref = [_ldr(_margins(z[i].double().numpy(), int(y[i]), 0.1, transform), lam) for i in range(len(y))]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5, atol=1e-6 * max(lam, 1.0))


def test_ldr_kl_is_a_max_over_label_distributions():
    """The closed form beats every q on the simplex and is attained at q* = softmax(l / lam)."""
    z, y = _random(n=4)
    lam = 0.7
    rng = np.random.default_rng(0)
    for i in range(4):
        l = _margins(z[i].double().numpy(), int(y[i]), 0.1, "softplus_mean")
        value = _ldr(l, lam)
        qs = rng.dirichlet(np.ones(len(l)), size=2000)
        objective = qs @ l - lam * (qs * np.log(qs * len(l))).sum(1)
        assert objective.max() <= value + 1e-9
        q_star = softmax(l / lam)
        assert q_star @ l - lam * (q_star * np.log(q_star * len(l))).sum() == pytest.approx(value, rel=1e-9)


def test_ldr_kl_identities():
    z, y = _random()
    # Raw scores, no margin, lam = 1: cross-entropy minus log C.
    plain = _loss("ldr_kl", lam=1.0, margin=0.0, score_transform="none")(z, y)
    torch.testing.assert_close(plain, F.cross_entropy(z, y, reduction="none") - math.log(6))
    # lam -> 0: the top-1 margin loss (within lam log C); lam -> inf: the mean margin (within var / 2 lam).
    zd = z.double()
    margins = ldr_margins(zd, y, 0.1, "softplus_mean")
    small = _loss("ldr_kl", lam=1e-3).compute(zd, y) - margins.max(1).values
    assert (small <= 1e-12).all() and (small >= -1e-3 * math.log(6) - 1e-12).all()
    large = _loss("ldr_kl", lam=1e6).compute(zd, y) - margins.mean(1)
    assert (large >= -1e-9).all() and (large <= margins.var(1, unbiased=False) / 2e6 + 1e-9).all()


def test_ldr_kl_softplus_scores_make_it_bounded():
    z = torch.tensor([[1e4, -1e4, -1e4], [-1e4, 1e4, 3.0]])
    out = _loss("ldr_kl")(z, torch.tensor([1, 0]))
    # Scores lie in [0, C], so l_k <= C + delta and the loss <= C + delta.
    assert (out <= 3 + 0.1 + 1e-5).all()


def _aldr_reference(l: np.ndarray, lam0: float, alpha: float) -> tuple[float, float]:
    """min over lam > 0 of LDR-KL_lam + alpha/2 (lam - lam0)^2, by scalar minimization."""
    res = minimize_scalar(lambda lam: _ldr(l, lam) + alpha / 2 * (lam - lam0) ** 2,
                          bounds=(1e-6, lam0 + 50), method="bounded", options={"xatol": 1e-12})
    return float(res.fun), float(res.x)


@pytest.mark.parametrize(("lam0", "alpha"), [(1.0, 1.0), (0.5, 4.0), (2.0, 0.3)])
def test_aldr_kl_is_the_minimum_over_lambda(lam0, alpha):
    z, y = _random(n=12)
    ours = _loss("aldr_kl", lam0=lam0, alpha=alpha)(z, y)
    lam = adaptive_lambda(ldr_margins(z.double(), y, 0.1, "softplus_mean"), lam0, alpha)
    for i in range(12):
        value, lam_ref = _aldr_reference(_margins(z[i].double().numpy(), int(y[i]), 0.1, "softplus_mean"),
                                         lam0, alpha)
        assert ours[i].item() == pytest.approx(value, rel=1e-5, abs=1e-6)
        assert lam[i].item() == pytest.approx(lam_ref, rel=1e-4, abs=1e-5)


def test_aldr_kl_lambda_fixed_point_and_limits():
    z, y = _random(n=16)
    margins = ldr_margins(z.double(), y, 0.1, "softplus_mean")
    lam = adaptive_lambda(margins, 1.0, 2.0)
    q = (margins / lam[:, None]).softmax(1)
    kl = (q * (q * margins.shape[1]).log()).sum(1)
    torch.testing.assert_close(lam, 1.0 + kl / 2.0)
    assert (lam >= 1.0).all()
    # A very stiff pull (alpha -> inf) pins lambda at lam0: plain LDR-KL.
    torch.testing.assert_close(_loss("aldr_kl", lam0=0.8, alpha=1e7)(z, y), _loss("ldr_kl", lam=0.8)(z, y),
                               rtol=1e-5, atol=1e-5)


def test_probabilistic_flag_follows_the_score_transform():
    assert not _loss("ldr_kl").probabilistic
    assert _loss("ldr_kl", score_transform="none").probabilistic
    assert _loss("aldr_kl", score_transform="none").probabilistic
    z, y = _random()
    raw = _loss("ldr_kl", score_transform="none")
    torch.testing.assert_close(raw(z, y), raw(z + 5.0, y))  # shift-invariant: a function of softmax(z)

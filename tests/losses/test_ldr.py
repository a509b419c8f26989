"""LDR-KL and ALDR-KL: the closed form, its limits, and the authors' adaptive per-sample lambda."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import logsumexp, softmax

from lossbench.losses import LOSSES
from lossbench.losses.ldr import ldr_margins


def _loss(name, **kw):
    return LOSSES.get(name)(**kw)


def _random(n=32, c=6, scale=2.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, c, generator=g), torch.randint(c, (n,), generator=g)


def _scores(z: np.ndarray, transform: str) -> np.ndarray:
    if transform == "none":
        return z
    if transform == "abs_mean":
        return z / np.abs(z).mean()
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
    out = _loss("ldr_kl", lam=1.0, score_transform="none")(z, torch.tensor([0]))
    expected = math.log((math.exp(0) + math.exp(1.1) + math.exp(2.1)) / 3)
    assert out.item() == pytest.approx(expected, rel=1e-6)
    # Softplus scores: s = softplus(z) / mean softplus(z).
    sp = [math.log1p(math.exp(v)) for v in (0.0, 1.0, 2.0)]
    s = [v / (sum(sp) / 3) for v in sp]
    l = [0.0, s[1] - s[0] + 0.1, s[2] - s[0] + 0.1]
    expected = 0.5 * math.log(sum(math.exp(v / 0.5) for v in l) / 3)
    assert _loss("ldr_kl", lam=0.5)(z, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("transform", ["softplus_mean", "abs_mean", "none"])
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
    out = _loss("ldr_kl", lam=1.0)(z, torch.tensor([1, 0]))
    # Scores lie in [0, C], so l_k <= C + delta and the loss <= C + delta.
    assert (out <= 3 + 0.1 + 1e-5).all()


def _code_ldr_kl(z: torch.Tensor, y: torch.Tensor, lam=10.0, margin=0.1) -> torch.Tensor:
    """LDRLoss_V1 per sample as the official code computes it, in z's dtype: softplus(z) divided by its
    mean over the classes (no guard), the margins, lam (log mean exp(l / lam))."""
    s = F.softplus(z)
    s = s / s.mean(dim=1, keepdim=True)
    l = s - s.gather(1, y[:, None]) + margin * (1 - F.one_hot(y, z.shape[1]).to(z.dtype))
    return lam * ((l / lam).logsumexp(dim=1) - math.log(z.shape[1]))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_softplus_scores_equal_the_code_s_when_every_logit_is_far_below_zero(dtype):
    """Every logit below about -28: softplus(z) ~ e^z, so mean softplus falls under 1e-12, where an earlier
    guard (the mean clamped at 1e-12) shrank the scores and moved the loss by about 1.1 from the code's.
    The scores are now the code's unguarded ratio, for LDR-KL and ALDR-KL alike."""
    z = torch.tensor([[-30.0, -31.0, -35.0, -33.5], [-40.0, -41.0, -45.0, -29.0]], dtype=dtype)
    y = torch.tensor([2, 0])
    ours = _loss("ldr_kl")(z, y)
    code = _code_ldr_kl(z, y)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(ours, code, rtol=tol, atol=tol)
    s = F.softplus(z.double())
    guarded = s / s.mean(dim=1, keepdim=True).clamp_min(1e-12)
    l = guarded - guarded.gather(1, y[:, None]) + 0.1 * (1 - F.one_hot(y, 4).double())
    old = 10 * ((l / 10).logsumexp(dim=1) - math.log(4))
    assert (old - code.double()).abs().max() > 1.0  # what the guard cost
    aldr = LOSSES.get("aldr_kl")(num_train=2, score_transform="softplus_mean")
    value, _ = _aldr_reference(z[0].double().numpy(), 2, 10.0, transform="softplus_mean")
    assert aldr(z.double(), y, index=torch.arange(2))[0].item() == pytest.approx(value, rel=1e-9)


def test_softplus_scores_stay_finite_where_the_code_s_softplus_underflows():
    """Below about -104 softplus(z) is 0 in float32 and the code's ratio 0 / 0; lossbench's scores are
    C softmax(log softplus z), whose log softplus(z) = z there: the ratio's limit, e^(z_k) / mean e^z."""
    z = torch.tensor([[-110.0, -111.0, -120.0]])
    assert torch.isnan(_code_ldr_kl(z, torch.tensor([0]))).all()
    out = _loss("ldr_kl")(z, torch.tensor([0]))
    assert torch.isfinite(out).all()
    limit = 3 * torch.softmax(z.double(), dim=1)
    l = limit - limit[:, :1] + 0.1 * torch.tensor([[0.0, 1.0, 1.0]], dtype=torch.float64)
    expected = 10 * ((l / 10).logsumexp(dim=1) - math.log(3))
    assert out.item() == pytest.approx(expected.item(), rel=1e-5)


def test_abs_mean_scores_are_unguarded_and_zero_for_a_zero_row():
    z = torch.tensor([[1e-14, -3e-14, 2e-14], [0.0, 0.0, 0.0]], dtype=torch.float64)
    from lossbench.losses.ldr import ldr_scores

    scores = ldr_scores(z, "abs_mean")
    torch.testing.assert_close(scores[0], z[0] / z[0].abs().mean(), rtol=1e-12, atol=0)
    assert torch.equal(scores[1], torch.zeros(3, dtype=torch.float64))


def test_ldr_kl_default_lambda_is_the_authors_10():
    assert _loss("ldr_kl").lam == 10.0


def _aldr(num_train=32, **kw):
    return LOSSES.get("aldr_kl")(num_train=num_train, **kw)


def _aldr_reference(z: np.ndarray, y: int, lam_old: float, lam0=10.0, alpha=2.0, margin=0.1,
                    transform="abs_mean", q_floor=1e-5) -> tuple[float, float]:
    """One visit of a sample, as the official ALDRLoss_V1 computes it (written here from its maths, float64):
    q from the stored lambda over the scores without margin, one fixed-point update, the loss at the
    new lambda."""
    c = len(z)
    s = _scores(z, transform)
    q = softmax(s / lam_old)
    q = (q + q_floor) / (q + q_floor).sum()
    kl = float((q * np.log(c * q)).sum())
    lam = lam0 - lam0 * kl / (alpha * math.log(c))
    l = np.array([s[k] - s[y] + (margin if k != y else 0.0) for k in range(c)])
    value = lam * (logsumexp(l / lam) - math.log(c)) - alpha * math.log(c) / (2 * lam0) * (lam - lam0) ** 2
    return value, lam


def test_aldr_kl_hand_worked():
    # z = (3, -3, 0), y = 0: mean|z| = 2, s = (1.5, -1.5, 0); lambda_old = lam0 = 10, alpha = 2, no floor.
    s = [1.5, -1.5, 0.0]
    e = [math.exp(v / 10) for v in s]
    q = [v / sum(e) for v in e]
    kl = sum(v * math.log(3 * v) for v in q)
    lam = 10 * (1 - kl / (2 * math.log(3)))
    l = [0.0, -3.0 + 0.1, -1.5 + 0.1]
    expected = lam * math.log(sum(math.exp(v / lam) for v in l) / 3) - 2 * math.log(3) / 20 * (lam - 10) ** 2
    loss = _aldr(num_train=4, q_floor=0.0)
    z = torch.tensor([[3.0, -3.0, 0.0]], dtype=torch.float64)
    out = loss(z, torch.tensor([0]), index=torch.tensor([2]))
    assert out.item() == pytest.approx(expected, rel=1e-12)
    assert loss.lam[2].item() == pytest.approx(lam, rel=1e-6)  # stored (float32 buffer)
    assert lam < 10.0
    torch.testing.assert_close(loss.lam[[0, 1, 3]], torch.full((3,), 10.0))  # other samples untouched


@pytest.mark.parametrize("transform", ["abs_mean", "softplus_mean", "none"])
def test_aldr_kl_matches_the_official_update_over_two_visits(transform):
    z, y = _random(n=12)
    index = torch.arange(12) + 5
    loss = _aldr(num_train=20, score_transform=transform)
    lam_old = [10.0] * 12
    for visit in range(2):
        zz = z.double() * (1.0 + 0.5 * visit)
        ours = loss(zz, y, index=index)
        for i in range(12):
            value, lam = _aldr_reference(zz[i].numpy(), int(y[i]), lam_old[i], transform=transform)
            assert ours[i].item() == pytest.approx(value, rel=1e-9, abs=1e-9)
            assert loss.lam[index[i]].item() == pytest.approx(lam, rel=1e-6)
            lam_old[i] = float(loss.lam[index[i]])  # the code keeps lambda in float32 as well


def test_aldr_kl_lambda_stays_in_its_range_and_is_stored_only_in_training_mode():
    z, y = _random(n=32, scale=20.0)
    index = torch.arange(32)
    loss = _aldr(num_train=32, alpha=2.0)
    loss.eval()
    loss(z, y, index=index)
    torch.testing.assert_close(loss.lam, torch.full((32,), 10.0))  # eval: computed, not stored
    loss.train()
    loss(z, y, index=index)
    assert (loss.lam <= 10.0).all() and (loss.lam >= 10.0 * (1 - 1 / 2.0) - 1e-5).all()
    assert (loss.lam < 10.0).any()
    assert "lam" in loss.state_dict()


def test_aldr_kl_gradient_is_ldr_kl_at_the_fixed_new_lambda():
    """lambda and the penalty carry no gradient: d ALDR / dz = d LDR-KL_lambda / dz at the updated lambda."""
    z, y = _random(n=6)
    index = torch.arange(6)
    loss = _aldr(num_train=6)
    z1 = z.double().clone().requires_grad_(True)
    loss(z1, y, index=index).sum().backward()
    lam = loss.lam.double()
    z2 = z.double().clone().requires_grad_(True)
    margins = ldr_margins(z2, y, 0.1, "abs_mean")
    value = lam[:, None] * ((margins / lam[:, None]).logsumexp(1, keepdim=True) - math.log(6))
    value.sum().backward()
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-6, atol=1e-8)


def test_aldr_kl_needs_the_index_and_the_training_set_size():
    with pytest.raises(ValueError, match="needs num_train"):
        LOSSES.get("aldr_kl")()
    with pytest.raises(ValueError, match="training-set indices"):
        _aldr()(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))


def test_aldr_kl_lambda_survives_a_checkpoint_and_resume(tmp_path):
    """A run resumed from its checkpoint ends with the same per-sample lambdas as one that was not stopped."""
    from lossbench.data import DATASETS
    from lossbench.models.mlp import MLP
    from lossbench.reweight.base import Reweighter
    from lossbench.train.trainer import Trainer

    split = DATASETS.get("digits")()

    def fit(epochs, path):
        torch.manual_seed(0)
        model = MLP(split.input_shape, split.num_classes, hidden=[16])
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
        loss = _aldr(num_train=len(split.y_train))
        trainer = Trainer(epochs=epochs, device="cpu", progress="none", checkpoint_every=1)
        trainer.fit(model, loss, Reweighter(), opt, sched, split, seed=0, checkpoint_path=path)
        return loss

    straight = fit(3, tmp_path / "straight.pt")
    fit(2, tmp_path / "stopped.pt")  # stops after epoch 2, leaving its checkpoint
    resumed = fit(3, tmp_path / "stopped.pt")  # a fresh loss (lambda = lam0) resumes from it
    assert (straight.lam < 10.0).all()
    torch.testing.assert_close(resumed.lam, straight.lam, rtol=0, atol=0)


def test_probabilistic_flag_follows_the_score_transform():
    assert not _loss("ldr_kl").probabilistic
    assert _loss("ldr_kl", score_transform="none").probabilistic
    assert not _aldr().probabilistic
    assert _aldr(score_transform="none").probabilistic
    z, y = _random()
    raw = _loss("ldr_kl", score_transform="none")
    torch.testing.assert_close(raw(z, y), raw(z + 5.0, y))  # shift-invariant: a function of softmax(z)

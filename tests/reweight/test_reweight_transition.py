"""Transition-matrix methods: the anchor estimator, forward and backward correction, any loss."""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from lossbench.lifecycle.builders import build_loss
from lossbench.losses import LOSSES, Loss
from lossbench.losses.comp_sum import CrossEntropy
from lossbench.losses.robust import MeanAbsoluteError
from lossbench.reweight.correction import BackwardCorrection, ForwardCorrection, backward_corrected
from lossbench.reweight.importance import RENT, ImportanceReweighting
from lossbench.reweight.transition import anchor_transition, parse_source, transition_mae
from lossbench.train.objective import check_pairing

# An asymmetric, invertible noise model on 3 classes (rows: clean class, columns: noisy label).
T3 = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.0, 0.7]])


def test_transition_source_names():
    assert parse_source(True) == "true" and parse_source("true") == "true"
    assert parse_source("anchor") == "anchor"
    for bad in (False, "estimated", None):
        with pytest.raises(ValueError, match="known: true, anchor"):
            parse_source(bad)


def test_anchor_estimator_recovers_T_from_exact_posteriors():
    g = torch.Generator().manual_seed(0)
    c = 3
    # clean posteriors: soft mixtures plus one perfectly confident input per class
    clean = torch.distributions.Dirichlet(torch.ones(c)).sample((200,))
    clean = torch.cat([clean, torch.eye(c)])[torch.randperm(200 + c, generator=g)]
    noisy = clean.double() @ torch.as_tensor(T3)  # p(noisy | x) = T^T p(clean | x)
    est = anchor_transition(noisy, quantile=1.0)
    assert torch.allclose(est, torch.as_tensor(T3), atol=1e-12)
    assert transition_mae(est.numpy(), T3) < 1e-12


def test_anchor_estimator_with_the_97th_percentile():
    # many near-anchors (p(clean = i) in [0.95, 1)) and a few overconfident outliers that
    # the quantile must skip: their posteriors are not T's rows
    torch.manual_seed(1)
    c, per = 3, 400
    rows = []
    for i in range(c):
        u = 0.95 + 0.05 * torch.rand(per)
        near = ((1 - u) / (c - 1))[:, None].repeat(1, c)
        near[:, i] = u
        rows.append(near)
    mixtures = torch.distributions.Dirichlet(torch.ones(c)).sample((300,))
    noisy = torch.cat(rows + [mixtures]).double() @ torch.as_tensor(T3)
    outliers = torch.eye(c, dtype=torch.float64).repeat(5, 1)  # p(noisy = i | x) = 1 exactly
    probs = torch.cat([noisy, outliers])
    plain = anchor_transition(probs, quantile=1.0)
    robust = anchor_transition(probs, quantile=0.97)
    assert transition_mae(plain.numpy(), T3) > 0.1  # fooled by the outliers
    assert transition_mae(robust.numpy(), T3) < 0.01
    with pytest.raises(ValueError, match="anchor_quantile"):
        anchor_transition(probs, quantile=0.0)


def test_forward_correction_recovers_the_clean_posterior(make_ctx):
    """Free logits per input, fitted by forward-corrected CE to many noisy labels."""
    g = torch.Generator().manual_seed(0)
    p_clean = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.25, 0.15, 0.6]])
    k, n = 3, 20000
    inputs = torch.arange(k).repeat_interleave(n)
    y_clean = torch.multinomial(p_clean[inputs], 1, generator=g).squeeze(1)
    y_noisy = torch.multinomial(torch.as_tensor(T3, dtype=torch.float32)[y_clean], 1, generator=g).squeeze(1)

    # the mean over all k * n samples, computed once per distinct (input, noisy label) pair
    pairs, counts = torch.unique(inputs * 3 + y_noisy, return_counts=True)
    rows, labels, counts = pairs // 3, pairs % 3, counts.float()

    def fit(per_sample) -> torch.Tensor:
        z = torch.zeros(k, 3, requires_grad=True)
        for _ in range(3000):  # plain gradient descent on a smooth problem in 9 numbers
            loss = (per_sample(z[rows], labels) * counts).sum() / counts.sum()
            (grad,) = torch.autograd.grad(loss, z)
            with torch.no_grad():
                z -= 10.0 * grad
        return z.detach().softmax(1)

    forward = ForwardCorrection(transition="true")
    forward.setup(make_ctx(T3))
    corrected = fit(lambda logits, y: forward.per_sample_loss(CrossEntropy(), logits, y))
    plain = fit(CrossEntropy())
    assert torch.allclose(corrected, p_clean, atol=0.02), corrected
    # plain CE learns the noisy posterior T^T p instead, far from the clean one
    assert torch.allclose(plain, p_clean @ torch.as_tensor(T3, dtype=torch.float32), atol=0.02)
    assert (plain - p_clean).abs().max() > 0.1


def test_forward_is_the_loss_at_the_noisy_distribution(make_ctx):
    torch.manual_seed(0)
    logits, target = torch.randn(6, 3), torch.randint(0, 3, (6,))
    q = logits.softmax(1) @ torch.as_tensor(T3, dtype=torch.float32)
    q_y = q.gather(1, target[:, None]).squeeze(1)
    forward = ForwardCorrection()
    forward.setup(make_ctx(T3))
    assert torch.allclose(forward.per_sample_loss(CrossEntropy(), logits, target), -q_y.log(), atol=1e-6)
    mae = forward.per_sample_loss(MeanAbsoluteError(), logits, target)
    assert torch.allclose(mae, 2 * (1 - q_y), atol=1e-6)


T2 = np.array([[0.8, 0.2], [0.3, 0.7]])  # T^-1 = [[1.4, -0.4], [-0.6, 1.6]]


def test_backward_correction_by_hand(make_ctx):
    # logits [0, log 3]: p = [0.25, 0.75]; l(z, 0) = log 4, l(z, 1) = log 4/3
    logits = torch.tensor([[0.0, math.log(3)]] * 2)
    backward = BackwardCorrection()
    backward.setup(make_ctx(T2))
    got = backward.per_sample_loss(CrossEntropy(), logits, torch.tensor([0, 1]))
    l0, l1 = math.log(4), math.log(4 / 3)
    assert got.tolist() == pytest.approx([1.4 * l0 - 0.4 * l1, -0.6 * l0 + 1.6 * l1], abs=1e-5)
    assert got.tolist() == pytest.approx([1.825740, -0.371485], abs=1e-5)  # can be negative
    # unbiased: E_{y~ | y = 0} l_corr = 0.8 l_corr(0) + 0.2 l_corr(1) = l(z, 0)
    assert float(0.8 * got[0] + 0.2 * got[1]) == pytest.approx(l0, abs=1e-5)


def test_backward_caps_each_label_loss(make_ctx):
    # l(z, 0) = log(1 + e^-40) ~ 0, l(z, 1) = 40 + log(1 + e^-40) ~ 40: capped at -ln(1e-7) = 16.118
    logits, target = torch.tensor([[20.0, -20.0]]), torch.tensor([0])
    capped = BackwardCorrection()
    capped.setup(make_ctx(T2))
    assert capped.loss_cap == pytest.approx(-math.log(1e-7))
    got = float(capped.per_sample_loss(CrossEntropy(), logits, target))
    assert got == pytest.approx(-0.4 * 16.118096, abs=1e-4)
    raw = BackwardCorrection(loss_cap=None)
    raw.setup(make_ctx(T2))
    assert float(raw.per_sample_loss(CrossEntropy(), logits, target)) == pytest.approx(-0.4 * 40.0, abs=1e-4)
    with pytest.raises(ValueError, match="loss_cap must be positive or null"):
        BackwardCorrection(loss_cap=0)


def test_backward_refuses_a_singular_T(make_ctx):
    backward = BackwardCorrection()
    with pytest.raises(ValueError, match="needs an invertible transition matrix"):
        backward.setup(make_ctx(np.full((3, 3), 1 / 3)))


class LogitMargin(Loss):
    """A loss on raw logit scale: not probabilistic."""

    family = "robust"
    probabilistic = False

    def compute(self, logits, target):
        return (1 - logits.gather(1, target[:, None]).squeeze(1)).clamp_min(0)


def test_forward_refuses_a_loss_that_is_not_probabilistic(make_ctx):
    forward = ForwardCorrection()
    with pytest.raises(ValueError, match=r"needs a loss that depends on the logits only through softmax.*"
                                         r"use reweight=backward"):
        forward.setup(make_ctx(T3, loss=LogitMargin()))
    # backward and the pure weights take it
    logits, target = torch.randn(5, 3), torch.randint(0, 3, (5,))
    backward = BackwardCorrection()
    backward.setup(make_ctx(T3, loss=LogitMargin()))
    assert torch.isfinite(backward.per_sample_loss(LogitMargin(), logits, target)).all()


LOSS_CONF = resources.files("lossbench.conf").joinpath("loss")


@pytest.mark.parametrize("name", [n for n in LOSSES.names() if LOSS_CONF.joinpath(f"{n}.yaml").is_file()])
def test_every_catalogue_loss_combines_with_every_transition_method(name, make_ctx):
    torch.manual_seed(0)
    c, b = 4, 7
    T = 0.7 * np.eye(c) + 0.1 * (1 - np.eye(c))
    loss = build_loss(OmegaConf.load(str(LOSS_CONF.joinpath(f"{name}.yaml"))), c, b)
    loss.on_epoch_start(0, 10)
    logits, target = torch.randn(b, c), torch.randint(0, c, (b,))
    features = torch.randn(b, 8) if loss.needs_features else None
    for cls in (ForwardCorrection, BackwardCorrection, ImportanceReweighting, RENT):
        strategy = cls()
        if loss.level != "sample":  # no per-sample losses to correct: refused before training
            with pytest.raises(ValueError, match=f"per-sample losses, and loss '{name}' has none"):
                check_pairing(loss, strategy)
            continue
        if cls is ForwardCorrection and not type(loss).probabilistic:
            with pytest.raises(ValueError, match="probabilistic"):
                strategy.setup(make_ctx(T, loss=loss))
            continue
        strategy.setup(make_ctx(T, loss=loss))
        index = torch.arange(b) if loss.needs_index else None  # per-sample state (aldr_kl)
        per_sample = strategy.per_sample_loss(loss, logits, target, features, index)
        assert per_sample.shape == (b,) and torch.isfinite(per_sample).all(), (name, cls.__name__)
        strategy.weights(per_sample.detach(), target, torch.arange(b))


def test_backward_matches_a_loop_over_labels_for_a_non_ce_loss(make_ctx):
    torch.manual_seed(0)
    loss, logits, target = MeanAbsoluteError(), torch.randn(5, 3), torch.randint(0, 3, (5,))
    T_inv = torch.as_tensor(np.linalg.inv(T3), dtype=torch.float32)
    every = torch.stack([loss(logits, torch.full((5,), j)) for j in range(3)], 1)
    expected = (T_inv[target] * every).sum(1)
    assert torch.allclose(backward_corrected(loss, logits, target, T_inv), expected, atol=1e-6)


def test_state_round_trip_keeps_the_matrix(make_ctx):
    a = BackwardCorrection()
    a.setup(make_ctx(T3))
    b = BackwardCorrection()
    b.setup(make_ctx(np.eye(3)))
    b.load_state_dict(a.state_dict())
    assert torch.equal(b.T64, a.T64) and torch.equal(b.T_inv, a.T_inv)
    s = a.summary()
    assert s["transition_source"] == "true" and s["transition_mae"] == 0.0
    assert np.allclose(s["transition"], T3)

"""Weights of every strategy: hand-worked examples, mean 1, config and registry agree."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lossbench.losses.comp_sum import CrossEntropy
from lossbench.reweight import REWEIGHTS
from lossbench.reweight.class_balanced import ClassBalanced
from lossbench.reweight.importance import RENT, ImportanceReweighting, rent_weights
from lossbench.reweight.loss_based import LossBased, loss_based_weights
from lossbench.reweight.transition import importance_weights

CONF = resources.files("lossbench.conf").joinpath("reweight")


def sym_T(c: int, eta: float) -> np.ndarray:
    """Symmetric flip noise: 1 - eta on the diagonal, eta / (c - 1) elsewhere."""
    return (1 - eta) * np.eye(c) + eta / (c - 1) * (1 - np.eye(c))


def yaml_names() -> list[str]:
    return sorted(p.name[:-5] for p in CONF.iterdir() if p.name.endswith(".yaml"))


def from_yaml(name: str):
    return instantiate(OmegaConf.load(str(CONF.joinpath(f"{name}.yaml"))))


def test_every_yaml_is_a_registered_strategy_and_back():
    assert yaml_names() == REWEIGHTS.names()
    for name in yaml_names():
        obj = from_yaml(name)
        assert type(obj) is REWEIGHTS.get(name), name


@pytest.mark.parametrize("name", REWEIGHTS.names())
def test_docstring_gives_rule_and_paper(name):
    cls = REWEIGHTS.get(name)
    assert cls.__doc__ and len(cls.__doc__) > 40
    if name != "none":
        assert cls.paper and cls.paper.split()[0] in cls.__doc__


@pytest.mark.parametrize("name", REWEIGHTS.names())
def test_weights_have_mean_one_over_a_batch(name, make_ctx):
    torch.manual_seed(0)
    c, b = 4, 33
    strategy = from_yaml(name)
    strategy.setup(make_ctx(sym_T(c, 0.4), y_noisy=torch.tensor([0] * 10 + [1] * 5 + [2] * 3 + [3])))
    strategy.on_epoch_start(0, 10)
    logits, target = torch.randn(b, c), torch.randint(0, c, (b,))
    per_sample = strategy.per_sample_loss(CrossEntropy(), logits, target)
    assert per_sample.shape == (b,) and torch.isfinite(per_sample).all()
    w = strategy.weights(per_sample.detach(), target, torch.arange(b))
    if w is None:  # uniform: the trainer takes the plain mean
        assert name in ("none", "forward", "backward", "sovr", "drop_flagged")  # drop: by epoch_indices
        return
    assert w.shape == (b,) and (w >= 0).all()
    assert float(w.mean()) == pytest.approx(1.0, abs=1e-6)


def test_class_balanced_inverse_by_hand(make_ctx):
    # noisy label counts [4, 2, 1] -> w_c = 1/n_c = [1/4, 1/2, 1]; batch labels [0, 1, 2, 2]
    # raw [0.25, 0.5, 1, 1], mean 0.6875 -> [0.363636, 0.727273, 1.454545, 1.454545]
    cb = ClassBalanced(scheme="inverse")
    cb.setup(make_ctx(sym_T(3, 0.2), y_noisy=[0, 0, 0, 0, 1, 1, 2]))
    w = cb.weights(torch.zeros(4), torch.tensor([0, 1, 2, 2]), torch.arange(4))
    assert w.tolist() == pytest.approx([0.363636, 0.727273, 1.454545, 1.454545], abs=1e-6)


def test_class_balanced_effective_number_by_hand(make_ctx):
    # beta 0.5: (1 - beta) / (1 - beta^n) = 0.5/0.9375, 0.5/0.75, 0.5/0.5 = [0.533333, 0.666667, 1]
    # batch labels [0, 1, 2, 2]: mean 0.8 -> [0.666667, 0.833333, 1.25, 1.25]
    cb = ClassBalanced(scheme="effective", beta=0.5)
    cb.setup(make_ctx(sym_T(3, 0.2), y_noisy=[0, 0, 0, 0, 1, 1, 2]))
    w = cb.weights(torch.zeros(4), torch.tensor([0, 1, 2, 2]), torch.arange(4))
    assert w.tolist() == pytest.approx([0.666667, 0.833333, 1.25, 1.25], abs=1e-6)
    # a class absent from the training labels weighs 0 and does not break the others
    cb.setup(make_ctx(sym_T(3, 0.2), y_noisy=[0, 1]))
    assert cb.class_weights.tolist() == pytest.approx([1.0, 1.0, 0.0])


def test_class_balanced_refuses_bad_settings():
    with pytest.raises(ValueError, match="known: inverse, effective"):
        ClassBalanced(scheme="sqrt")
    with pytest.raises(ValueError, match=r"beta must be in \[0, 1\)"):
        ClassBalanced(beta=1.0)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        # losses [0, 1, 2, 3] -> h = [-1, -1/3, 1/3, 1]; w = 4 exp(f) / sum exp(f)
        ("linupper", [0.477082, 0.929229, 1.296844, 1.296844]),  # f = [0, 2/3, 1, 1]
        ("quadratic", [0.582678, 1.417322, 1.417322, 0.582678]),  # f = [0, 8/9, 8/9, 0]
        ("extremes", [1.321513, 0.678487, 0.678487, 1.321513]),  # f = [1, 1/3, 1/3, 1]
    ],
)
def test_loss_based_by_hand(strategy, expected):
    w = loss_based_weights(torch.tensor([0.0, 1.0, 2.0, 3.0]), strategy)
    assert w.tolist() == pytest.approx(expected, abs=1e-5)


def test_loss_based_temperature_delta_and_burnout():
    losses = torch.tensor([0.0, 1.0, 2.0, 3.0])
    # a huge temperature flattens the weights to 1; a small one concentrates them
    assert loss_based_weights(losses, "linupper", temperature=1e6).tolist() == pytest.approx([1.0] * 4)
    sharp = loss_based_weights(losses, "extremes", temperature=0.01)
    assert sharp.tolist() == pytest.approx([2.0, 0.0, 0.0, 2.0], abs=1e-6)
    # delta = 2: h = [-2, -2/3, 2/3, 2], linupper f = min(h + 2, 2) = [0, 4/3, 2, 2]
    e = torch.tensor([0.0, 4 / 3, 2.0, 2.0]).exp()
    expected = (4 * e / e.sum()).tolist()
    assert loss_based_weights(losses, "linupper", delta=2.0).tolist() == pytest.approx(expected)
    # equal losses: every weight 1
    assert loss_based_weights(torch.full((5,), 0.7), "quadratic").tolist() == pytest.approx([1.0] * 5)
    lb = LossBased(burnout_epochs=2)
    lb.on_epoch_start(1, 10)
    assert lb.weights(losses, torch.zeros(4, dtype=torch.long), torch.arange(4)) is None
    lb.on_epoch_start(2, 10)
    assert lb.weights(losses, torch.zeros(4, dtype=torch.long), torch.arange(4)) is not None
    with pytest.raises(ValueError, match="known: linupper, quadratic, extremes"):
        LossBased(strategy="upper")


T2 = [[0.8, 0.2], [0.3, 0.7]]
# logits [0, log 3] -> p = [0.25, 0.75]; p_noisy = T^T p = [0.425, 0.575]


def test_importance_ratio_by_hand(make_ctx):
    logits = torch.tensor([[0.25, 0.75], [0.25, 0.75]]).log()
    target = torch.tensor([0, 1])
    beta = importance_weights(logits, target, torch.tensor(T2))
    assert beta.tolist() == pytest.approx([0.25 / 0.425, 0.75 / 0.575], abs=1e-6)  # 10/17, 30/23
    iw = ImportanceReweighting()
    iw.setup(make_ctx(T2))
    iw.per_sample_loss(CrossEntropy(), logits, target)
    w = iw.weights(torch.ones(2), target, torch.arange(2))
    assert w.tolist() == pytest.approx([460 / 740, 1020 / 740], abs=1e-6)  # [0.621622, 1.378378]


def test_importance_needs_the_logits_of_the_same_batch(make_ctx):
    iw = ImportanceReweighting()
    iw.setup(make_ctx(T2))
    with pytest.raises(RuntimeError, match="must follow per_sample_loss"):
        iw.weights(torch.ones(2), torch.tensor([0, 1]), torch.arange(2))


def test_rent_multinomial_draws_are_resampling_counts():
    torch.manual_seed(0)
    beta = torch.tensor([1.0, 3.0, 0.0, 4.0])  # pi = [1/8, 3/8, 0, 1/2]
    draws = torch.stack([rent_weights(beta, "multinomial", 1.0) for _ in range(4000)])
    # each draw: 4 samples drawn, w = 4 k / 4 = k (integers), mean 1
    assert torch.equal(draws, draws.round()) and draws.mean(1).tolist() == pytest.approx([1.0] * 4000)
    assert draws[:, 2].max() == 0  # a zero importance weight is never drawn
    assert draws.mean(0).tolist() == pytest.approx([0.5, 1.5, 0.0, 2.0], abs=0.06)  # B pi
    half = rent_weights(beta, "multinomial", 0.5)  # 2 draws: each counts 4/2 = 2
    assert set(half.tolist()) <= {0.0, 2.0, 4.0} and float(half.sum()) == 4.0


def test_rent_dirichlet_tends_to_reweighting_with_large_alpha():
    torch.manual_seed(0)
    beta = torch.tensor([1.0, 3.0, 0.0, 4.0])
    w = rent_weights(beta, "dirichlet", alpha=1e6)
    assert w.tolist() == pytest.approx([0.5, 1.5, 0.0, 2.0], abs=0.01)
    draws = torch.stack([rent_weights(beta, "dirichlet", alpha=1.0) for _ in range(2000)])
    assert draws.mean(1).tolist() == pytest.approx([1.0] * 2000, abs=1e-5)
    assert draws.mean(0).tolist() == pytest.approx([0.5, 1.5, 0.0, 2.0], abs=0.06)


def test_rent_refuses_bad_settings():
    with pytest.raises(ValueError, match="known: multinomial, dirichlet"):
        RENT(sampler="gumbel")
    with pytest.raises(ValueError, match="resample_ratio must be positive"):
        RENT(resample_ratio=0)

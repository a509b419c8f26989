"""One training step (lossbench.train.objective): the L1 penalty and the loss contract, on numbers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lossbench.losses import LOSSES
from lossbench.losses.comp_sum import CrossEntropy
from lossbench.reweight.base import NoReweighting, Reweighter
from lossbench.train.objective import Objective, l1_penalty


class Identity:
    """A batch transform that hands the raw batch to the model (float features)."""

    def __call__(self, x, train, generator=None):
        return x


W = [[1.0, -2.0], [0.5, 0.0], [0.0, 3.0]]
B = [0.1, -0.2, 0.0]
X = [[1.0, 2.0], [-1.0, 0.5]]
Y = [0, 2]


def _model() -> nn.Linear:
    model = nn.Linear(2, 3).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor(W, dtype=torch.float64))
        model.bias.copy_(torch.tensor(B, dtype=torch.float64))
    return model


def _ce_by_hand() -> float:
    total = 0.0
    for x, y in zip(X, Y, strict=True):
        z = [sum(w * v for w, v in zip(row, x, strict=True)) + b for row, b in zip(W, B, strict=True)]
        total += math.log(sum(math.exp(v) for v in z)) - z[y]
    return total / len(X)


def _step(model, l1):
    objective = Objective(CrossEntropy(), Reweighter(), Identity(), l1=l1)
    x = torch.tensor(X, dtype=torch.float64)
    return objective(model, x, torch.tensor(Y), torch.arange(2))


def test_l1_penalty_by_hand():
    # sum |theta| = |1| + |-2| + |0.5| + 0 + 0 + |3| + |0.1| + |-0.2| + 0 = 6.8
    assert l1_penalty(_model()).item() == pytest.approx(6.8, rel=1e-15)


def test_step_loss_is_mean_loss_plus_delta_times_l1_norm():
    """ANL's objective (Ye et al. 2023; the official ActiveNegativeLoss adds delta * sum |theta| to the
    batch-mean loss): mean_i l_i + delta sum |theta|, here with delta = 0.01."""
    step = _step(_model(), l1=0.01)
    assert step.loss.item() == pytest.approx(_ce_by_hand() + 0.01 * 6.8, rel=1e-12)
    plain = _step(_model(), l1=0.0)
    assert plain.loss.item() == pytest.approx(_ce_by_hand(), rel=1e-12)
    assert torch.equal(plain.loss, plain.per_sample.mean())  # l1 = 0 adds nothing, bit for bit


def test_l1_gradient_is_delta_times_the_sign_of_each_parameter():
    with_l1, without = _model(), _model()
    _step(with_l1, l1=0.01).loss.backward()
    _step(without, l1=0.0).loss.backward()
    for p1, p0 in zip(with_l1.parameters(), without.parameters(), strict=True):
        torch.testing.assert_close(p1.grad - p0.grad, 0.01 * torch.sign(p1.detach()), rtol=0, atol=1e-15)
    assert with_l1.weight.grad[1, 1] == without.weight.grad[1, 1]  # |theta| at 0: subgradient 0, as torch


class Recorder(nn.Module):
    """A stand-in loss that records what the objective serves it."""

    needs_features = True
    needs_index = True

    def __init__(self):
        super().__init__()
        self.seen = {}

    def forward(self, logits, target, features=None, index=None):
        self.seen = {"features": features, "index": index}
        return logits.sum(1) * 0 + 1.0


class WithFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.head = nn.Linear(2, 4), nn.Linear(4, 3)

    def forward(self, x, return_features=False):
        f = self.body(x)
        return (self.head(f), f) if return_features else self.head(f)


def test_the_objective_serves_features_and_indices_to_the_losses_that_declare_them():
    loss = Recorder()
    objective = Objective(loss, Reweighter(), Identity())
    index = torch.tensor([7, 3])
    objective(WithFeatures(), torch.randn(2, 2), torch.tensor([0, 1]), index)
    assert loss.seen["features"].shape == (2, 4)
    assert torch.equal(loss.seen["index"], index)


def test_aldr_kl_lambda_of_the_visited_samples_moves_in_a_step():
    loss = LOSSES.get("aldr_kl")(num_train=10)
    objective = Objective(loss, Reweighter(), Identity())
    torch.manual_seed(0)
    model = nn.Linear(2, 3)
    objective(model, torch.randn(3, 2) * 5, torch.tensor([0, 1, 2]), torch.tensor([4, 0, 9]))
    moved = (loss.lam != 10.0).nonzero().flatten().tolist()
    assert moved == [0, 4, 9]


def test_trainer_l1_shrinks_the_weights():
    from lossbench.data import DATASETS
    from lossbench.models.mlp import MLP
    from lossbench.train.trainer import Trainer

    split = DATASETS.get("digits")()
    norms = {}
    for l1 in (0.0, 1e-3):
        torch.manual_seed(0)
        model = MLP(split.input_shape, split.num_classes, hidden=[16])
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
        Trainer(epochs=2, device="cpu", progress="none", checkpoint_every=0, l1=l1).fit(
            model, CrossEntropy(), Reweighter(), opt, sched, split, seed=0)
        norms[l1] = l1_penalty(model).item()
    # Each SGD step moves every parameter by lr * l1 towards 0: the norm drops by about
    # steps * lr * l1 * (number of parameters) (the loss gradients differ a little between the two runs).
    n_params = sum(p.numel() for p in model.parameters())
    steps = 2 * math.ceil(len(split.y_train) / 64)
    predicted = steps * 0.1 * 1e-3 * n_params
    assert 0.8 * predicted < norms[0.0] - norms[1e-3] < 1.2 * predicted


def _built(name: str, reduction: str, **kwargs):
    from omegaconf import OmegaConf

    from lossbench.conf import CONF_DIR
    from lossbench.lifecycle.builders import build_loss

    cfg = OmegaConf.merge(OmegaConf.load(CONF_DIR / "loss" / f"{name}.yaml"),
                          {"reduction": reduction, **kwargs})
    return build_loss(cfg, num_classes=3, num_train=8)


@pytest.mark.parametrize("name", sorted(LOSSES.names()))
def test_every_loss_takes_loss_reduction_and_the_step_sums_it(name):
    """loss.reduction reaches every loss through build_loss (no loss's constructor sees it) and the step
    reads it from the instance, so the sum is one mechanism for the whole registry."""
    assert _built(name, "sum").reduction == "sum"
    assert _built(name, "mean").reduction == "mean"
    with pytest.raises(ValueError, match="unknown loss.reduction 'total'; known: mean, sum"):
        _built(name, "total")


@pytest.mark.parametrize(("name", "kwargs"), [("ce", {}), ("focal", {"gamma": 3.0}),
                                              ("anyloss", {"average": "macro"})])
def test_summed_step_is_batch_size_times_the_mean(name, kwargs):
    """Per-sample (ce, focal) and batch-level (anyloss) values: the summed step is B times the mean one;
    the L1 penalty is added unscaled."""
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(1)).double()
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    steps = {}
    for reduction in ("mean", "sum"):
        objective = Objective(_built(name, reduction, **kwargs), NoReweighting(), Identity(), l1=0.01)
        steps[reduction] = objective(_model(), x, y, torch.arange(6))
    penalty = 0.01 * 6.8
    assert steps["sum"].loss.item() == pytest.approx(6 * (steps["mean"].loss.item() - penalty) + penalty,
                                                     rel=1e-12)
    torch.testing.assert_close(steps["sum"].per_sample, steps["mean"].per_sample)


def test_sgd_on_the_sum_equals_sgd_on_the_mean_with_lr_and_decay_scaled_on_full_batches():
    """Mukhoti et al.'s step (SGD lr 0.1, momentum 0.9, weight decay 5e-4, clip 2 on the summed loss) is
    SGD on the mean with lr 0.1 B, weight decay 5e-4 / B and clip 2 / B, batch after batch of B; a last,
    smaller batch of b < B is where they part (the sum weighs it b / B)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 2, generator=g).double(), torch.randint(3, (20,), generator=g)
    batch = 8

    def train(reduction, lr, decay, clip, batches):
        model = _model()
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=decay)
        objective = Objective(_built("focal", reduction, gamma=3.0), NoReweighting(), Identity())
        for index in batches:
            opt.zero_grad()
            objective(model, x[index], y[index], index).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
        return model.weight.detach().clone()

    full = [torch.arange(i, i + batch) for i in (0, 8, 0, 8, 4)]
    summed = train("sum", 0.1, 5e-4, math.inf, full)
    meaned = train("mean", 0.1 * batch, 5e-4 / batch, math.inf, full)
    torch.testing.assert_close(summed, meaned, rtol=1e-12, atol=1e-12)
    # clipping the sum at 2 is clipping the mean at 2 / B, up to the 1e-6 torch adds to the norm it divides by
    summed = train("sum", 0.1, 5e-4, 2.0, full)
    meaned = train("mean", 0.1 * batch, 5e-4 / batch, 2.0 / batch, full)
    torch.testing.assert_close(summed, meaned, rtol=1e-4, atol=0)
    ragged = [*full, torch.arange(16, 20)]
    gap = train("sum", 0.1, 5e-4, 2.0, ragged) - train("mean", 0.1 * batch, 5e-4 / batch, 2.0 / batch, ragged)
    assert gap.abs().max() > 1e-6

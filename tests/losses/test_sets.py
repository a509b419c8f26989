"""OKO (set-level loss): its formula on hand-worked numbers, the official code's maths, its sampler."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lossbench.losses import LOSSES
from lossbench.reweight.base import NoReweighting
from lossbench.reweight.class_balanced import ClassBalanced
from lossbench.train.objective import Objective, check_training


def _oko(**kwargs):
    return LOSSES.get("oko")(**kwargs)


def test_hard_and_soft_loss_of_one_set_by_hand():
    """Set labels [0, 0, 1] (pair class 0, odd class 1); the member logits sum to s = [2, 0, 1]."""
    logits = torch.tensor([[1.0, 0.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    target = torch.tensor([0, 0, 1])
    log_z = math.log(math.exp(2) + math.exp(0) + math.exp(1))
    hard = _oko(k=1)(logits, target)
    soft = _oko(k=1, targets="soft")(logits, target)
    assert hard.shape == soft.shape == (1,)
    assert hard.item() == pytest.approx(log_z - 2, abs=1e-12)  # -log softmax(s)_0
    # soft target (2 e_0 + e_1) / 3: -(2/3 log p_0 + 1/3 log p_1) = log Z - (2/3 * 2 + 1/3 * 0)
    assert soft.item() == pytest.approx(log_z - 4 / 3, abs=1e-12)


def _official_oko(member_logits: np.ndarray, pair: np.ndarray, odd: np.ndarray, k: int,
                  soft: bool) -> np.ndarray:
    """LukasMut/OKO's maths, re-derived in numpy: the OKO head sums the member logits over each set
    ("(b k) d -> b k d", then sum over k); targets are one_hot(pair) (hard) or, as TargetMaker's
    make_multimodal_targets, (one_hot(pair) * (set_card - k) + sum_odd one_hot(odd)) / set_card with
    set_card = k + 2; the loss is optax.softmax_cross_entropy = -sum(y * log_softmax(s)) per set."""
    b, c = len(pair), member_logits.shape[1]
    s = member_logits.reshape(b, k + 2, c).sum(1)
    log_p = s - s.max(1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(1, keepdims=True))
    eye = np.eye(c)
    y = eye[pair] * (2 if soft else 1)
    if soft:
        y = (y + eye[odd].sum(1)) / (k + 2)
    return -(y * log_p).sum(1)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("targets", ["hard", "soft"])
def test_matches_the_official_code_maths(k, targets):
    g = torch.Generator().manual_seed(k)
    labels = torch.arange(7).repeat(5)
    loss = _oko(k=k, targets=targets)
    index = loss.epoch_batches(labels, 8 * (k + 2), g)[0]
    target = labels[index]
    logits = 3 * torch.randn(len(index), 7, generator=g, dtype=torch.float64)
    sets = target.view(-1, k + 2).numpy()
    pair, odd = sets[:, 0], sets[:, 2:]  # the sampler lays a set out as [pair, pair, odd_1..odd_k]
    expected = _official_oko(logits.numpy(), pair, odd, k, targets == "soft")
    np.testing.assert_allclose(loss(logits, target).numpy(), expected, rtol=1e-12, atol=1e-12)


def test_set_order_inside_a_set_does_not_matter():
    loss = _oko(k=2, targets="soft")
    logits = torch.randn(8, 5, dtype=torch.float64)
    target = torch.tensor([1, 1, 0, 4, 2, 3, 2, 0])
    perm = torch.tensor([3, 0, 2, 1, 5, 7, 6, 4])  # shuffles within each set of 4
    torch.testing.assert_close(loss(logits, target), loss(logits[perm], target[perm]))


def test_sampler_builds_sets_of_k_plus_one_classes_with_a_pair():
    labels = torch.tensor([0] * 50 + [1] * 5 + [2] * 5 + [3] * 5)  # imbalanced
    loss = _oko(k=2)
    batches = loss.epoch_batches(labels, 40, torch.Generator().manual_seed(0))
    assert all(len(b) % 4 == 0 for b in batches)
    assert [len(b) for b in batches[:-1]] == [40] * (len(batches) - 1)  # 10 sets of 4 per batch
    positions = torch.cat(batches).view(-1, 4)
    assert len(positions) == len(labels) // 4  # sets_per_epoch null: the training size // (k + 2)
    sets = labels[positions]
    assert (sets[:, 0] == sets[:, 1]).all() and (positions[:, 0] != positions[:, 1]).all()
    for row in sets:
        assert len(row.unique()) == 3 and row[0] not in row[2:]


def test_sampler_draws_pair_classes_uniformly_whatever_their_frequency():
    """As the official sampler does (jax.random.choice over the classes present, p=None)."""
    labels = torch.tensor([0] * 400 + [1] * 20 + [2] * 20 + [3] * 20 + [5] * 4)  # class 4 absent
    loss = _oko(k=1, sets_per_epoch=20000)
    positions = torch.cat(loss.epoch_batches(labels, 300, torch.Generator().manual_seed(1))).view(-1, 3)
    pair = torch.bincount(labels[positions[:, 0]], minlength=6).double() / len(positions)
    expected = torch.tensor([0.2, 0.2, 0.2, 0.2, 0.0, 0.2], dtype=torch.float64)
    torch.testing.assert_close(pair, expected, atol=0.015, rtol=0)  # 5 sigma of a binomial at n = 20000
    # within its class, each sample is drawn uniformly
    counts = torch.bincount(positions[labels[positions[:, 0]] == 5][:, :2].reshape(-1), minlength=len(labels))
    assert (counts[-4:] > 0).all() and counts[:-4].sum() == 0


def test_sampler_follows_the_generator():
    labels = torch.arange(5).repeat(6)
    loss = _oko()
    a = loss.epoch_batches(labels, 9, torch.Generator().manual_seed(3))
    b = loss.epoch_batches(labels, 9, torch.Generator().manual_seed(3))
    c = loss.epoch_batches(labels, 9, torch.Generator().manual_seed(4))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_labels_that_cannot_form_sets_are_refused_before_training():
    loss = _oko(k=1)
    with pytest.raises(ValueError, match="class 2 has 1 training sample"):
        check_training(loss, NoReweighting(), torch.tensor([0, 0, 1, 1, 2]), 64, torch.device("cpu"))
    with pytest.raises(ValueError, match="k \\+ 1 = 4 distinct classes"):
        _oko(k=3).prepare(torch.tensor([0, 0, 1, 1, 2, 2]), 64, torch.device("cpu"))


def test_a_batch_that_is_not_made_of_sets_is_refused():
    loss = _oko(k=1)
    with pytest.raises(ValueError, match="not a whole number of sets"):
        loss(torch.zeros(4, 3), torch.tensor([0, 0, 1, 1]))
    with pytest.raises(ValueError, match=r"got a set with labels \[0, 1, 2\]"):
        loss(torch.zeros(3, 3), torch.tensor([0, 1, 2]))


def test_per_sample_reweighting_is_refused():
    with pytest.raises(ValueError, match="reweight=class_balanced weighs or corrects per-sample losses, and "
                                         "loss 'oko' has none"):
        check_training(_oko(), ClassBalanced(), torch.arange(3).repeat(4), 64, torch.device("cpu"))


def test_the_training_step_minimises_the_mean_over_sets():
    """Objective: the step's loss is the mean of the sets' losses; each sample carries its set's value."""
    from lossbench.data import DATASETS
    from lossbench.data.transforms import BatchTransform
    from lossbench.models.mlp import MLP

    split = DATASETS.get("digits")()
    loss = _oko(k=1, targets="soft")
    objective = Objective(loss, NoReweighting(), BatchTransform(split))
    index = objective.epoch_batches(split.y_train_noisy, 30, torch.Generator().manual_seed(0),
                                    torch.device("cpu"))[0]
    torch.manual_seed(0)
    model = MLP(split.input_shape, split.num_classes, hidden=[16])
    step = objective(model, split.x_train[index], split.y_train_noisy[index], index)
    per_set = loss(model(split.x_train[index]), split.y_train_noisy[index]).detach()
    assert len(index) == 30 and per_set.shape == (10,)
    torch.testing.assert_close(step.loss.detach(), per_set.mean())
    torch.testing.assert_close(step.per_sample, per_set.repeat_interleave(3))
    assert torch.equal(step.pred, step.logits.argmax(1))

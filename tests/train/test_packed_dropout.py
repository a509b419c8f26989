"""Dropout in packed sweeps: each run draws its masks from its own stream, so its numbers do not depend
on which jobs share its pack (a resume that rebuilds a smaller pack changes nothing), and a packed
member draws the masks its lone run draws."""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import pytest
import torch
from torch import nn

from lossbench.data import DATASETS
from lossbench.losses import LOSSES
from lossbench.models.base import Classifier
from lossbench.models.dropout import Dropout, dropout_stream
from lossbench.models.mlp import MLP
from lossbench.models.packing import NotPackable, PackedModel
from lossbench.models.wide_resnet import WideResNet
from lossbench.reweight.base import NoReweighting
from lossbench.train.packed import PackMember, fit_pack, resolve_pending, restore
from lossbench.train.sinks import Sink
from lossbench.train.trainer import Trainer

TIME_KEYS = ("train_seconds", "throughput", "seconds")


@dataclass
class Spec:
    loss: str = "ce"
    seed: int = 0
    lr: float = 0.1


def _digits():
    return DATASETS.get("digits")()


def _noisy(split, seed: int):
    g = torch.Generator().manual_seed(seed + 100)
    y = split.y_train.clone()
    flip = torch.rand(len(y), generator=g) < 0.2
    y[flip] = (y[flip] + 1) % split.num_classes
    return replace(split, y_train_noisy=y)


def _mlp(split):
    return MLP(split.input_shape, split.num_classes, hidden=(32,), dropout=0.3)


def _member(spec: Spec, base, epochs: int, make=_mlp, checkpoint=None, sinks=()) -> PackMember:
    split = _noisy(base, spec.seed)
    torch.manual_seed(spec.seed)
    model = make(split)
    opt = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs + 1)
    trainer = Trainer(epochs=epochs, batch_size=32, device="cpu", progress="none",
                      checkpoint_every=1 if checkpoint else 0)
    return PackMember(trainer, model, LOSSES.get(spec.loss)(), NoReweighting(), opt, sched, split, spec.seed,
                      sinks=sinks, checkpoint_path=checkpoint,
                      checkpoint_meta={"spec": repr(spec)} if checkpoint else None)


def _strip(history):
    return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in history]


def _same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_members_numbers_do_not_depend_on_its_pack():
    """ce seed 0 with dropout 0.3: alone in a pack, in a pack of 2 and in a pack of 4, bit for bit."""
    base = _digits()
    specs = [Spec("ce", seed=k) for k in range(4)]
    runs = {}
    for size, chosen in ((1, [0]), (2, [0, 2]), (4, [0, 1, 2, 3])):
        members = [_member(specs[k], base, epochs=2) for k in chosen]
        results = fit_pack(members)
        runs[size] = (members[0], results[0])
    (m1, r1), (m2, r2), (m4, r4) = runs[1], runs[2], runs[4]
    assert _strip(r1.history) == _strip(r2.history) == _strip(r4.history)
    assert _same_state(m1.model, m2.model) and _same_state(m1.model, m4.model)


def test_a_packed_member_draws_its_lone_runs_masks():
    """Trainer.fit alone and the same run in a pack draw the same masks: one epoch agrees to the float
    tolerance of packed kernels (tests/train/test_packed.py), as it does without dropout."""
    base = _digits()
    lone = _member(Spec("ce", seed=0), base, epochs=1)
    history = lone.trainer.fit(lone.model, lone.loss_fn, lone.reweight, lone.optimizer, lone.scheduler,
                               lone.split, lone.seed)
    members = [_member(Spec("ce", seed=k), base, epochs=1) for k in range(3)]
    result = fit_pack(members)[0]
    for key, value in _strip(history)[0].items():
        if key.endswith("acc") or key == "memorization":
            assert result.history[0][key] == pytest.approx(value, abs=1.01 / len(base.y_test)), key
        else:
            assert result.history[0][key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    for name, tensor in lone.model.state_dict().items():
        tol = 5e-6 * float(tensor.abs().max().clamp_min(1e-3))
        torch.testing.assert_close(members[0].model.state_dict()[name], tensor, rtol=0, atol=tol, msg=name)


class _Kill(Sink):
    class Killed(BaseException):
        pass

    def __init__(self, at_epoch: int) -> None:
        self.at_epoch = at_epoch

    def epoch(self, record: dict) -> None:
        if record["epoch"] == self.at_epoch:
            raise _Kill.Killed


def test_a_resume_after_a_member_diverged_is_bit_identical_to_the_uninterrupted_pack(tmp_path):
    """Member 1 diverges in epoch 1; the pack is killed in epoch 3; the resume rebuilds a pack of the two
    survivors only, and they end exactly as in the uninterrupted pack of three."""
    base = _digits()
    specs = [Spec("ce", seed=0), Spec("ce", seed=1, lr=float("inf")), Spec("gce", seed=2)]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight = [_member(s, base, 4, checkpoint=tmp_path / "a" / f"m{k}.pt") for k, s in enumerate(specs)]
    straight_results = fit_pack(straight)
    assert [r.status for r in straight_results] == ["completed", "diverged", "completed"], \
        [(r.status, r.diverged_epoch) for r in straight_results]
    killed = [_member(s, base, 4, checkpoint=tmp_path / "b" / f"m{k}.pt", sinks=(_Kill(3),) if k == 2 else ())
              for k, s in enumerate(specs)]
    with pytest.raises(_Kill.Killed):
        fit_pack(killed)
    survivors = [_member(specs[k], base, 4, checkpoint=tmp_path / "b" / f"m{k}.pt") for k in (0, 2)]
    resolve_pending([m.checkpoint_path for m in survivors])
    for m in survivors:
        restore(m)
    assert [m.start_epoch for m in survivors] == [2, 2]
    results = fit_pack(survivors)
    for k, member, result in zip((0, 2), survivors, results, strict=True):
        assert _strip(result.history) == _strip(straight_results[k].history)
        assert _same_state(member.model, straight[k].model)


def test_grouped_channels_draw_each_members_masks_from_its_stream():
    """Dropout on convolution channels (the grouped path's other layout): member k's masks are the ones
    its own stream gives, whatever the pack."""
    torch.manual_seed(0)

    def net():
        body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), Dropout(0.5), nn.Flatten())
        return Classifier(body, 4 * 6 * 6, 5)

    models = [net() for _ in range(3)]
    alone = copy.deepcopy(models)
    x = torch.randn(3, 8, 3, 6, 6)
    packed = PackedModel(models)
    assert packed.grouped
    packed.generators = [torch.Generator().manual_seed(k) for k in range(3)]
    out = packed(x)
    for k, model in enumerate(alone):
        with dropout_stream(torch.Generator().manual_seed(k)):
            torch.testing.assert_close(out[k], model(x[k]), rtol=1e-5, atol=1e-6)


def test_dropout_outside_grouped_layers_trains_one_by_one():
    """Under vmap the masks would be the pack's, not the member's: such a pack trains one by one
    (NotPackable), which gives every member its lone run's numbers."""
    base = DATASETS.get("synthetic")(num_samples=120, num_classes=4, image_shape=[3, 8, 8])

    def make(split):
        return WideResNet(split.input_shape, split.num_classes, depth=10, width=1, dropout=0.3)

    members = [_member(Spec("ce", seed=k), base, epochs=1, make=make) for k in range(2)]
    with pytest.raises(NotPackable, match="dropout"):
        fit_pack(members)

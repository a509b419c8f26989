"""Packed training against unpacked runs: equality after one epoch, divergence, kill and resume.

Tolerance (float32 on CPU): after one epoch every parameter and buffer of a
member is within 5e-6 * max|tensor| of its unpacked run's (measured: at most
1.1e-6), per-epoch losses and NLLs within 1e-5 relative, accuracies within one
sample. The differences come from batched kernels (bmm, grouped convolutions)
summing in another order; nothing else differs.
"""

from __future__ import annotations

import copy
import math
import statistics
from dataclasses import dataclass, replace

import pytest
import torch
from torch import nn

from lossbench.core import signals
from lossbench.data import DATASETS
from lossbench.data.transforms import BatchTransform
from lossbench.losses import LOSSES
from lossbench.models import packing
from lossbench.models.cnn import CNN4
from lossbench.models.mlp import MLP
from lossbench.models.packing import NotPackable, PackedModel
from lossbench.models.resnet import ResNet
from lossbench.reweight import REWEIGHTS
from lossbench.reweight.base import ReweightContext, Reweighter
from lossbench.train import packed as packed_lib
from lossbench.train.checkpoint import load_checkpoint
from lossbench.train.packed import (
    MemberResult,
    PackInterrupted,
    PackMember,
    _clip_gradients,
    _fuse_key,
    fit_pack,
    pending_path,
    resolve_pending,
    restore,
)
from lossbench.train.sinks import Sink
from lossbench.train.trainer import Trainer

TIME_KEYS = ("train_seconds", "throughput", "seconds")


@dataclass
class Spec:
    loss: str = "ce"
    lr: float = 0.1
    seed: int = 0
    rate: float = 0.0
    reweight: str = "none"
    grad_clip: float | None = None
    l1: float = 0.0
    loss_kwargs: tuple = ()
    optim: str = "sgd"
    t_max: int | None = None  # cosine period; epochs + 1 by default


def _flip(split, seed: int, rate: float):
    """Pair-flip noise (c -> c+1) on a share ``rate`` of the training labels."""
    g = torch.Generator().manual_seed(seed + 100)
    y = split.y_train.clone()
    flip = torch.rand(len(y), generator=g) < rate
    y[flip] = (y[flip] + 1) % split.num_classes
    return replace(split, y_train_noisy=y)


def _digits():
    return DATASETS.get("digits")()


def _images():
    return DATASETS.get("synthetic")(num_samples=400, num_classes=4, image_shape=[3, 8, 8],
                                     augment="crop_flip", separation=4.0)


def _build(spec: Spec, base, make_model, epochs: int, checkpoint=None, sinks=()):
    split = _flip(base, spec.seed, spec.rate)
    torch.manual_seed(spec.seed)
    model = make_model(split)
    kwargs = dict(spec.loss_kwargs)
    reduction = kwargs.pop("reduction", "mean")
    loss = LOSSES.get(spec.loss)(**kwargs)
    loss.reduction = reduction
    reweight = REWEIGHTS.get(spec.reweight)()
    reweight.setup(ReweightContext(split=split, loss=loss, true_T=None, device=torch.device("cpu"),
                                   seed=spec.seed))
    if spec.optim == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=0.9, weight_decay=5e-4)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=spec.lr / 100, weight_decay=1e-2, amsgrad=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=spec.t_max or epochs + 1)
    trainer = Trainer(epochs=epochs, batch_size=32, device="cpu", progress="none",
                      checkpoint_every=1 if checkpoint else 0, grad_clip=spec.grad_clip, l1=spec.l1)
    meta = {"spec": repr(spec)} if checkpoint else None
    return PackMember(trainer, model, loss, reweight, opt, sched, split, spec.seed, sinks=sinks,
                      checkpoint_path=checkpoint, checkpoint_meta=meta)


def _unpacked(member: PackMember) -> list[dict]:
    m = member
    return m.trainer.fit(m.model, m.loss_fn, m.reweight, m.optimizer, m.scheduler, m.split, m.seed)


def _assert_states_close(a: nn.Module, b: nn.Module, scale: float = 5e-6) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        if sa[key].is_floating_point():
            tol = scale * float(sa[key].abs().max().clamp_min(1e-3))
            torch.testing.assert_close(sb[key], sa[key], rtol=0, atol=tol, msg=key)
        else:
            assert torch.equal(sa[key], sb[key]), key


def _assert_records_close(a: dict, b: dict, n_test: int) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if key in TIME_KEYS:
            continue
        if key.endswith("acc") or key == "memorization":
            assert b[key] == pytest.approx(a[key], abs=1.01 / n_test), key
        else:
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), key


MIXED = [
    Spec("ce", lr=0.1, seed=0, rate=0.2),
    Spec("gce", lr=0.05, seed=1, rate=0.4, reweight="class_balanced"),
    Spec("nce_rce", lr=0.1, seed=2, rate=0.0, grad_clip=0.5, l1=1e-4),
    Spec("ce", lr=0.1, seed=3, rate=0.4),  # computes its loss together with member 0
    Spec("focal", lr=0.2, seed=4, rate=0.3, loss_kwargs=(("gamma", 2.0),)),
]


def _tiny_resnet(s):
    return ResNet(s.input_shape, s.num_classes, blocks=(1, 1), widths=(4, 8))


@pytest.mark.parametrize(("arch", "grouped"), [("mlp_bn", True), ("cnn4", True), ("cnn4", False),
                                               ("resnet", False)])
def test_one_epoch_equals_unpacked_runs(arch, grouped, monkeypatch):
    """Mixed losses, noise, strategies, learning rates, clipping and L1 in one pack; batch norm in every
    net; grouped layers (mlp, cnn4) and vmap (cnn4 forced, a residual net by necessity)."""
    if arch == "mlp_bn":
        base, make = _digits(), lambda s: MLP(s.input_shape, s.num_classes, hidden=(32,), batch_norm=True)
    elif arch == "cnn4":
        base, make = _images(), lambda s: CNN4(s.input_shape, s.num_classes, channels=(4, 8), hidden=16)
    else:
        base, make = _images(), _tiny_resnet
    if not grouped:
        monkeypatch.setattr(packing, "_groupable", lambda model: False)
    alone = [_build(spec, base, make, epochs=1) for spec in MIXED]
    histories = [_unpacked(m) for m in alone]
    members = [_build(spec, base, make, epochs=1) for spec in MIXED]
    results = fit_pack(members)
    assert PackedModel([copy.deepcopy(m.model) for m in members[:2]]).grouped is grouped
    assert [r.status for r in results] == ["completed"] * len(MIXED)
    for solo, member, history, result in zip(alone, members, histories, results, strict=True):
        _assert_states_close(solo.model, member.model)
        _assert_records_close(history[0], result.history[0], len(base.y_test))
    # per-member batch-norm statistics: each member's equals its own run's (checked above) and they differ
    means = [dict(m.model.named_buffers())[name] for m in members
             for name in [next(n for n, _ in m.model.named_buffers() if n.endswith("running_mean"))]]
    assert not torch.allclose(means[0], means[1])
    # the stacked storage is the members' storage: each member's own model predicts what the pack did
    for member, result in zip(members, results, strict=True):
        transform = BatchTransform(member.split)
        logits = member.trainer.predict(member.model, member.split.x_test, transform)
        acc = float((logits.argmax(1) == member.split.y_test).double().mean())
        assert acc == pytest.approx(result.history[0]["test_acc"], abs=1.01 / len(base.y_test))


def _shares_storage(members) -> bool:
    """Whether the members' optimizer states are rows of one stacked tensor (one optimizer stepped them)."""
    first = [next(iter(m.optimizer.state.values())) for m in members]
    tensors = [next(v for k, v in st.items() if k != "step") for st in first]
    return len({t.untyped_storage().data_ptr() for t in tensors}) == 1


@pytest.mark.parametrize("optim", ["sgd", "adamw"])
def test_shared_optimizer_settings_step_as_one_and_equal_unpacked(optim, tmp_path):
    """Same optimizer and schedule for all (the usual sweep): one stacked optimizer steps the pack;
    each member still ends as its lone run, and its checkpoint holds only its own rows.

    (No batch norm under AdamW: a bias before batch norm has zero gradient up to rounding, which
    Adam's normalisation blows up to steps of size lr, so those biases agree only to about lr.)"""
    base = _digits()
    bn = optim == "sgd"
    make = lambda s: MLP(s.input_shape, s.num_classes, hidden=(32,), batch_norm=bn)  # noqa: E731
    specs = [Spec(loss, seed=k, rate=0.3, optim=optim) for k, loss in enumerate(["ce", "gce", "ce", "mae"])]
    alone = [_build(s, base, make, epochs=2) for s in specs]
    histories = [_unpacked(m) for m in alone]
    members = [_build(s, base, make, epochs=2, checkpoint=tmp_path / f"{k}.pt") for k, s in enumerate(specs)]
    results = fit_pack(members)
    assert _shares_storage(members)
    if optim == "adamw":  # one step counter for all: one optimizer stepped them
        assert len({id(next(iter(m.optimizer.state.values()))["step"]) for m in members}) == 1
    for solo, member, history, result in zip(alone, members, histories, results, strict=True):
        _assert_states_close(solo.model, member.model, scale=2e-5)
        _assert_records_close(history[0], result.history[0], len(base.y_test))
        solo_state, packed_state = solo.optimizer.state_dict(), member.optimizer.state_dict()
        assert solo_state["param_groups"] == packed_state["param_groups"]
        for i, st in solo_state["state"].items():
            for name, v in st.items():
                torch.testing.assert_close(packed_state["state"][i][name], v, rtol=1e-4, atol=1e-6)
    # a member's checkpoint holds its own rows, not the whole pack's storage
    state = load_checkpoint(tmp_path / "0.pt")
    tensors = list(state["model"].values()) + [v for st in state["optimizer"]["state"].values()
                                               for v in st.values()]
    assert all(t.untyped_storage().nbytes() == t.numel() * t.element_size() for t in tensors)


def test_the_packs_sgd_is_unfused_so_that_a_members_numbers_do_not_depend_on_its_pack():
    """torch's fused CPU SGD rounds the elements past a tensor's last full vector otherwise than the
    per-tensor step (measured: 3 of 111 elements of a [3, 37] tensor differ after 20 steps), and which
    elements those are depends on the pack's size; the pack steps as a lone run does."""
    base = _digits()
    make = lambda s: MLP(s.input_shape, s.num_classes, hidden=(32,))  # noqa: E731
    members = [_build(Spec("ce", seed=k, rate=0.2, optim="sgd"), base, make, epochs=1) for k in range(2)]
    from lossbench.train.packed import _Stepper

    stepper = _Stepper(members, PackedModel([m.model for m in members]))
    assert stepper.stacked is not None and not stepper.stacked.param_groups[0]["fused"]


def test_schedules_that_part_ways_switch_to_per_member_steps():
    """Members whose learning rates agree at first and differ later: stacked steps, then each its own."""
    base = _digits()
    make = lambda s: MLP(s.input_shape, s.num_classes, hidden=(32,))  # noqa: E731
    specs = [Spec("ce", seed=0, rate=0.2, t_max=3, optim="adamw"), Spec("ce", seed=1, rate=0.2, t_max=9,
                                                                       optim="adamw")]
    alone = [_build(s, base, make, epochs=3) for s in specs]
    histories = [_unpacked(m) for m in alone]
    members = [_build(s, base, make, epochs=3) for s in specs]
    results = fit_pack(members)
    # stacked at first (rows of one tensor), per member once the cosines differ (own step counters)
    assert _shares_storage(members)
    steps = [next(iter(m.optimizer.state.values()))["step"] for m in members]
    assert steps[0] is not steps[1]
    for solo, member, history, result in zip(alone, members, histories, results, strict=True):
        assert [r["lr"] for r in result.history] == [r["lr"] for r in history]
        _assert_states_close(solo.model, member.model, scale=5e-5)
        steps = {int(st["step"]) for st in member.optimizer.state_dict()["state"].values()}
        assert steps == {int(st["step"]) for st in solo.optimizer.state_dict()["state"].values()}


@pytest.mark.parametrize("grouped", [True, False])
def test_packed_model_stacks_and_views(grouped, monkeypatch):
    if not grouped:
        monkeypatch.setattr(packing, "_groupable", lambda model: False)
    torch.manual_seed(0)
    models = [MLP((5,), 3, hidden=(4,), batch_norm=True) for _ in range(3)]
    alone = copy.deepcopy(models)
    packed = PackedModel(models)
    assert packed.params["body.1.weight"].shape == (3, 4, 5)
    for k, m in enumerate(models):
        assert torch.equal(m.body[1].weight, alone[k].body[1].weight)
        assert m.body[1].weight.data_ptr() == packed.params["body.1.weight"][k].data_ptr()
    x = torch.randn(3, 6, 5)
    out = packed(x)  # train mode: batch statistics, running statistics updated per member
    torch.testing.assert_close(out, torch.stack([m(x[k]) for k, m in enumerate(alone)]))
    for m, solo in zip(models, alone, strict=True):
        torch.testing.assert_close(m.body[2].running_mean, solo.body[2].running_mean)
        assert int(m.body[2].num_batches_tracked) == 1
    assert not torch.equal(models[0].body[2].running_mean, models[1].body[2].running_mean)
    packed.train(False)
    shared = packed.shared(x[0])
    torch.testing.assert_close(shared, torch.stack([m.eval()(x[0]) for m in alone]))
    with pytest.raises(NotPackable, match="another architecture"):
        PackedModel([MLP((5,), 3, hidden=(4,)), MLP((5,), 3, hidden=(6,))])


class _ItemNet(nn.Module):
    """A model vmap cannot batch: its forward reads a Python number from a tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, x, return_features=False):
        return self.lin(x) * float(x.mean())


def test_probe_refuses_what_vmap_cannot_run():
    packed = PackedModel([_ItemNet(), _ItemNet()])
    with pytest.raises(NotPackable, match="cannot run under vmap"):
        packed.probe(torch.randn(2, 3, 4))
    assert all(p.grad is None for p in packed.parameters())


def test_grouped_layers_fall_back_to_vmap_where_shapes_do_not_fit():
    """A linear layer on image rows is not one the grouped path runs; the probe moves the pack to vmap."""
    from lossbench.models.base import Classifier

    torch.manual_seed(0)
    models = [Classifier(nn.Sequential(nn.Linear(8, 4), nn.Flatten()), 3 * 8 * 4, 5) for _ in range(2)]
    alone = copy.deepcopy(models)
    packed = PackedModel(models)
    assert packed.grouped
    x = torch.randn(2, 6, 3, 8, 8)
    packed.probe(x)
    assert not packed.grouped
    torch.testing.assert_close(packed(x), torch.stack([m(x[k]) for k, m in enumerate(alone)]))


def test_clip_gradients_matches_torch_per_member():
    torch.manual_seed(0)
    grads = [torch.randn(3, 4, 5), torch.randn(3, 7)]
    max_norm = torch.tensor([0.5, math.inf, 100.0])
    expected = []
    for k in range(3):
        params = [nn.Parameter(torch.zeros_like(g[k])) for g in grads]
        for p, g in zip(params, grads, strict=True):
            p.grad = g[k].clone()
        if math.isfinite(max_norm[k]):
            torch.nn.utils.clip_grad_norm_(params, float(max_norm[k]))
        expected.append([p.grad for p in params])
    _clip_gradients(grads, max_norm)
    for k in range(3):
        for g, e in zip(grads, expected[k], strict=True):
            torch.testing.assert_close(g[k], e)
    total = math.sqrt(sum(float(g[0].pow(2).sum()) for g in grads))
    assert total == pytest.approx(0.5, rel=1e-5)  # member 0 clipped to its bound


def test_summed_members_equal_their_unpacked_runs():
    """loss.reduction=sum in a pack: two summed gce members fused in one call, a summed ce beside a
    mean one."""
    specs = [Spec("gce", lr=0.002, seed=0, rate=0.2, loss_kwargs=(("reduction", "sum"),)),
             Spec("gce", lr=0.003, seed=1, rate=0.2, loss_kwargs=(("reduction", "sum"),)),
             Spec("ce", lr=0.003, seed=2, loss_kwargs=(("reduction", "sum"),)),
             Spec("ce", lr=0.1, seed=3)]
    base, make = _digits(), lambda s: MLP(s.input_shape, s.num_classes, hidden=(16,))
    alone = [_build(spec, base, make, epochs=1) for spec in specs]
    for m in alone:
        _unpacked(m)
    members = [_build(spec, base, make, epochs=1) for spec in specs]
    assert [r.status for r in fit_pack(members)] == ["completed"] * len(specs)
    for solo, member in zip(alone, members, strict=True):
        _assert_states_close(solo.model, member.model)
    none = members[0].reweight
    assert _fuse_key(members[0].loss_fn, none) != _fuse_key(LOSSES.get("gce")(), none)


def test_fuse_keys_follow_loss_hyperparameters_and_strategy():
    gce = LOSSES.get("gce")
    none, balanced = REWEIGHTS.get("none")(), REWEIGHTS.get("class_balanced")()
    assert _fuse_key(gce(q=0.7), none) == _fuse_key(gce(q=0.7), none)
    assert _fuse_key(gce(q=0.7), none) != _fuse_key(gce(q=0.5), none)
    assert _fuse_key(gce(q=0.7), none) != _fuse_key(LOSSES.get("ce")(), none)
    assert _fuse_key(gce(q=0.7), balanced) is None


def test_diverged_member_is_marked_and_the_others_go_on():
    base = _digits()
    make = lambda s: MLP(s.input_shape, s.num_classes, hidden=(32,))  # noqa: E731
    specs = [Spec("ce", seed=0, rate=0.2), Spec("ce", lr=1e5, seed=1), Spec("gce", seed=2, rate=0.2)]
    finished = []
    members = [_build(s, base, make, epochs=2) for s in specs]
    results = fit_pack(members, on_finish=lambda k, r: finished.append((k, r.status)))
    assert [r.status for r in results] == ["completed", "diverged", "completed"]
    assert results[1].diverged_epoch == 1 and results[1].history == []  # epochs count from 1
    assert finished[0] == (1, "diverged")  # reported at once, before the others end
    assert [len(r.history) for r in (results[0], results[2])] == [2, 2]
    # the healthy members trained as if alone
    for k in (0, 2):
        solo = _build(specs[k], base, make, epochs=2)
        history = _unpacked(solo)
        _assert_states_close(solo.model, members[k].model, scale=5e-5)
        assert results[k].history[-1]["test_acc"] == pytest.approx(history[-1]["test_acc"], abs=0.02)


class _Kill(Sink):
    """Stops the process (an exception no training code catches) when an epoch is logged."""

    class Killed(BaseException):
        pass

    def __init__(self, at_epoch: int) -> None:
        self.at_epoch = at_epoch

    def epoch(self, record: dict) -> None:
        if record["epoch"] == self.at_epoch:
            raise _Kill.Killed


PACK = [Spec("ce", seed=0, rate=0.3), Spec("gce", lr=0.05, seed=1, rate=0.3, reweight="class_balanced"),
        Spec("nce_rce", seed=2, rate=0.3)]


def _pack(tmp_path, epochs, sinks=lambda k: ()):
    base = _digits()
    make = lambda s: MLP(s.input_shape, s.num_classes, hidden=(32,), batch_norm=True)  # noqa: E731
    return [_build(s, base, make, epochs, checkpoint=tmp_path / f"m{k}.pt", sinks=sinks(k))
            for k, s in enumerate(PACK)]


def _resume(tmp_path, epochs):
    members = _pack(tmp_path, epochs)
    resolve_pending([m.checkpoint_path for m in members])
    for m in members:
        restore(m)
    return members, fit_pack(members)


def _strip(history):
    return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in history]


def test_killed_pack_resumes_every_member_bit_identically(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight = _pack(tmp_path / "a", 3)
    straight_results = fit_pack(straight)
    # the kill lands in epoch 3's logging of the last member: its epoch-2 checkpoint is the last
    killed = _pack(tmp_path / "b", 3, sinks=lambda k: (_Kill(3),) if k == 2 else ())
    with pytest.raises(_Kill.Killed):
        fit_pack(killed)
    members, results = _resume(tmp_path / "b", 3)
    assert [m.start_epoch for m in members] == [2, 2, 2]
    for a, b, ra, rb in zip(straight, members, straight_results, results, strict=True):
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
        assert _strip(ra.history) == _strip(rb.history)
        assert a.optimizer.state_dict()["state"][0]["momentum_buffer"].equal(
            b.optimizer.state_dict()["state"][0]["momentum_buffer"])


@pytest.mark.parametrize("phase", [1, 2])
def test_interrupted_checkpoint_commit(tmp_path, monkeypatch, phase):
    """Killed while writing (phase 1: undone) or while renaming (phase 2: completed), every
    member resumes from the same epoch."""
    members = _pack(tmp_path, 2)
    real_save, real_promote = packed_lib.save_checkpoint, packed_lib._promote
    calls = {"n": 0}

    def failing(real):
        def call(*args):
            calls["n"] += 1
            if calls["n"] == len(PACK) + 2:  # epoch 1's commit: second file of the phase
                raise _Kill.Killed
            return real(*args)
        return call

    if phase == 1:
        monkeypatch.setattr(packed_lib, "save_checkpoint", failing(real_save))
    else:
        monkeypatch.setattr(packed_lib, "_promote", failing(real_promote))
    with pytest.raises(_Kill.Killed):
        fit_pack(members)
    monkeypatch.undo()
    paths = [m.checkpoint_path for m in members]
    assert any(pending_path(p).exists() for p in paths)
    resolve_pending(paths)
    assert not any(pending_path(p).exists() for p in paths)
    fresh = _pack(tmp_path, 2)
    for m in fresh:
        restore(m)
    assert {m.start_epoch for m in fresh} == ({1} if phase == 1 else {2})
    results = fit_pack(fresh)
    assert all(isinstance(r, MemberResult) and len(r.history) == 2 for r in results)


class _Resampling(Reweighter):
    def epoch_indices(self, n, generator):
        return torch.randint(0, n, (n,), generator=generator)


def test_settings_a_pack_cannot_share():
    base = _digits()
    make = lambda s: MLP(s.input_shape, s.num_classes, hidden=(8,))  # noqa: E731
    a, b = _build(Spec(seed=0), base, make, 1), _build(Spec(seed=1), base, make, 1)
    b.trainer = replace(b.trainer, batch_size=64)
    with pytest.raises(ValueError, match="must share trainer.batch_size; got 32, 64"):
        fit_pack([a, b])
    b = _build(Spec(seed=1), base, make, 1)
    b.reweight = _Resampling()
    with pytest.raises(NotPackable, match="resamples each epoch"):
        fit_pack([a, b])
    b = _build(Spec(seed=1), base, make, 1)
    for m in (a, b):
        m.trainer = replace(m.trainer, compile=True)
    with pytest.raises(NotPackable, match="compile"):
        fit_pack([a, b])


def test_seed_distribution_packed_matches_unpacked():
    """Over a whole run training diverges chaotically, so equality is in distribution:
    the mean final test accuracy of 8 seeds packed and unpacked agrees within
    two standard errors of the difference."""
    base = _digits()
    make = lambda s: MLP(s.input_shape, s.num_classes, hidden=(32,))  # noqa: E731
    specs = [Spec("ce", lr=0.1, seed=s, rate=0.4) for s in range(8)]
    epochs = 4
    unpacked = [_unpacked(_build(s, base, make, epochs))[-1]["test_acc"] for s in specs]
    packed = [r.history[-1]["test_acc"] for r in fit_pack([_build(s, base, make, epochs) for s in specs])]
    se = math.sqrt(statistics.variance(unpacked) / 8 + statistics.variance(packed) / 8)
    assert abs(statistics.mean(packed) - statistics.mean(unpacked)) <= 2 * se + 1e-9
    assert statistics.mean(packed) > 0.5


class _StopAt(Sink):
    """Asks for a stop (as SIGTERM does) after ``steps`` optimizer steps of the run."""

    def __init__(self, steps: int) -> None:
        self.steps, self.seen = steps, 0

    def batch(self, epoch: int, done: int, total: int) -> None:
        self.seen += 1
        if self.seen == self.steps:
            signals.request_stop(15, "test")

    def epoch(self, record: dict) -> None:
        pass


def test_stop_request_inside_an_epoch_resumes_bit_identically(tmp_path):
    """A stop request in the middle of epoch 2 checkpoints every member at that batch
    (``Trainer.fit``'s mid-epoch layout); the resumed pack ends exactly as an unstopped one."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight = fit_pack(_pack(tmp_path / "a", 3))
    stopped = _pack(tmp_path / "b", 3, sinks=lambda k: (_StopAt(60),) if k == 0 else ())
    signals.reset()
    try:
        with pytest.raises(PackInterrupted) as stop:
            fit_pack(stopped)
    finally:
        signals.reset()
    assert sorted(stop.value.saved) == [0, 1, 2] and "at epoch 2, batch" in stop.value.where
    for m in stopped:
        state = load_checkpoint(m.checkpoint_path)
        assert state["epoch"] == 0 and state["partial"]["next"] > 0 and len(state["history"]) == 1
    members, results = _resume(tmp_path / "b", 3)
    assert [m.start_epoch for m in members] == [1, 1, 1]
    for ra, rb in zip(straight, results, strict=True):
        assert _strip(ra.history) == _strip(rb.history)


def test_a_packed_checkpoint_resumes_unpacked(tmp_path):
    """A member's checkpoint has the layout ``Trainer.fit`` reads: an unpacked run resumes from it."""
    killed = _pack(tmp_path, 2, sinks=lambda k: (_Kill(2),) if k == 2 else ())
    with pytest.raises(_Kill.Killed):
        fit_pack(killed)
    m = _pack(tmp_path, 2)[0]
    before = load_checkpoint(m.checkpoint_path)
    assert before["epoch"] == 0 and "attack" in before["rng"]
    history = m.trainer.fit(m.model, m.loss_fn, m.reweight, m.optimizer, m.scheduler, m.split, m.seed,
                            checkpoint_path=m.checkpoint_path, checkpoint_meta=m.checkpoint_meta)
    assert [r["epoch"] for r in history] == [1, 2]
    assert history[0] == before["history"][0]  # resumed, not trained again


def test_stacked_train_stats_are_each_members_to_the_bit():
    """The pack's training figures for K members at once equal the lone trainer's, member by member:
    orders with a dropped last sample and with repeats (a resampling strategy visits some twice)."""
    from lossbench.train.trainer import _train_stats
    from lossbench.train.trainer import train_stats as stacked_train_stats

    k, n = 5, 301
    g = torch.Generator().manual_seed(3)
    y_clean = torch.randint(0, 10, (n,), generator=g)
    flip = torch.rand(k, n, generator=g) < 0.4
    y_noisy = torch.where(flip, torch.randint(0, 10, (k, n), generator=g), y_clean)
    losses, pred = torch.rand(k, n, generator=g) * 3, torch.randint(0, 10, (k, n), generator=g)
    orders = [torch.randperm(n, generator=g)[:-1] for _ in range(k - 1)]
    orders.append(torch.randint(0, n, (n - 1,), generator=g))  # with replacement
    order = torch.stack(orders)
    stacked = stacked_train_stats(order, losses, pred, y_noisy, y_clean, y_noisy != y_clean)
    for member in range(k):
        alone = _train_stats(order[member], losses[member], pred[member], y_noisy[member], y_clean,
                             y_noisy[member] != y_clean)
        assert stacked[member] == alone
    # by hand: 2 samples, member 0 visited both (one noisy label, fitted), member 1 only the first
    one = stacked_train_stats(torch.tensor([[0, 1], [0, 0]]), torch.tensor([[1.0, 3.0], [2.0, 9.0]]),
                              torch.tensor([[4, 5], [4, 0]]), torch.tensor([[4, 5], [4, 6]]),
                              torch.tensor([4, 6]), torch.tensor([[False, True], [False, False]]))
    assert one[0] == {"train_loss": 2.0, "train_acc": 1.0, "train_clean_acc": 0.5, "memorization": 1.0}
    assert one[1] == {"train_loss": 2.0, "train_acc": 1.0, "train_clean_acc": 1.0, "memorization": 0.0}

"""Per-step schedules: ExponentialDecay's values, stepping after every batch (lone and packed), and
resumes inside an epoch that continue bit for bit."""

from __future__ import annotations

import signal

import pytest
import torch

from lossbench.core import signals
from lossbench.data import DATASETS
from lossbench.losses import LOSSES
from lossbench.models.mlp import MLP
from lossbench.reweight.base import NoReweighting
from lossbench.train.checkpoint import load_checkpoint
from lossbench.train.packed import PackMember, fit_pack
from lossbench.train.schedulers import ExponentialDecay, steps_per_batch
from lossbench.train.trainer import Trainer

TIME_KEYS = ("seconds", "train_seconds", "throughput")


@pytest.fixture(scope="module")
def digits():
    return DATASETS.get("digits")()


def _lrs(steps: int, **kwargs) -> list[float]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
    sched = ExponentialDecay(opt, **kwargs)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_exponential_decay_is_the_keras_formula():
    lrs = _lrs(20_001, decay_rate=0.1, decay_steps=10_000)
    assert lrs[0] == 1e-3
    assert lrs[5_000] == pytest.approx(1e-3 * 10 ** -0.5, rel=1e-12)    # 3.1623e-4
    assert lrs[10_000] == pytest.approx(1e-4, rel=1e-12)
    assert lrs[20_000] == pytest.approx(1e-5, rel=1e-12)
    # Menon et al.'s MNIST run: 20 epochs of 1,875 steps end at 1e-3 * 0.1^3.75
    assert ExponentialDecay(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3), 0.1,
                            10_000).factor(37_499) == pytest.approx(0.1 ** (37_499 / 10_000))
    stairs = _lrs(25_001, decay_rate=0.5, decay_steps=10_000, staircase=True)
    assert stairs[9_999] == 1e-3 and stairs[10_000] == 5e-4
    assert stairs[19_999] == 5e-4 and stairs[25_000] == 2.5e-4
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1)
    assert steps_per_batch(ExponentialDecay(opt, 0.5, 10))
    assert not steps_per_batch(torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0))


@pytest.mark.parametrize("kwargs, words", [
    ({"decay_rate": 0.0, "decay_steps": 10}, "decay_rate must be > 0"),
    ({"decay_rate": 0.1, "decay_steps": 0}, "decay_steps must be a positive integer"),
    ({"decay_rate": 0.1, "decay_steps": 2.5}, "decay_steps must be a positive integer"),
    ({"decay_rate": 0.1, "decay_steps": 10, "staircase": "yes"}, "staircase must be true or false"),
])
def test_exponential_decay_refuses_bad_settings(kwargs, words):
    with pytest.raises(ValueError, match=words):
        ExponentialDecay(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1), **kwargs)


def _member(split, seed: int, epochs: int = 2, path=None, decay_steps: int = 7):
    torch.manual_seed(seed)
    model = MLP(split.input_shape, split.num_classes, hidden=[16])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-3)
    sched = ExponentialDecay(opt, decay_rate=0.5, decay_steps=decay_steps)
    trainer = Trainer(epochs=epochs, batch_size=64, device="cpu", progress="none",
                      checkpoint_every=1 if path else 0)
    return PackMember(trainer, model, LOSSES.get("ce")(), NoReweighting(), opt, sched, split, seed,
                      checkpoint_path=path, checkpoint_meta={"seed": seed} if path else None)


def _fit(m: PackMember) -> list[dict]:
    return m.trainer.fit(m.model, m.loss_fn, m.reweight, m.optimizer, m.scheduler, m.split, m.seed,
                         checkpoint_path=m.checkpoint_path, checkpoint_meta=m.checkpoint_meta)


def test_the_trainer_steps_a_per_step_schedule_after_every_batch(digits):
    m = _member(digits, 0)
    history = _fit(m)
    batches = -(-len(digits.y_train) // 64)
    assert m.scheduler.last_epoch == 2 * batches
    # each record keeps the lr of its epoch's last step
    for epoch, record in enumerate(history, start=1):
        assert record["lr"] == pytest.approx(1e-2 * 0.5 ** ((epoch * batches - 1) / 7), rel=1e-12)


def test_packed_members_step_their_schedules_as_alone(digits):
    alone = [_member(digits, seed) for seed in (0, 1)]
    histories = [_fit(m) for m in alone]
    packed = [_member(digits, seed) for seed in (0, 1)]
    results = fit_pack(packed)
    for lone, member, history, result in zip(alone, packed, histories, results, strict=True):
        assert member.scheduler.last_epoch == lone.scheduler.last_epoch
        assert [r["lr"] for r in result.history] == [r["lr"] for r in history]
        for a, b in zip(lone.model.parameters(), member.model.parameters(), strict=True):
            torch.testing.assert_close(b, a, rtol=0, atol=5e-6 * float(a.detach().abs().max()))


def test_a_stop_inside_an_epoch_resumes_a_per_step_schedule_bit_for_bit(digits, tmp_path, monkeypatch):
    reference = _member(digits, 0, path=tmp_path / "ref.pt")
    ref_history = _fit(reference)
    calls = {"n": 0}
    batches = -(-len(digits.y_train) // 64)

    def stop():
        calls["n"] += 1
        return signal.SIGTERM if calls["n"] == batches + 5 else None  # the 5th batch boundary of epoch 2

    monkeypatch.setattr(signals, "stop_requested", stop)
    path = tmp_path / "run.pt"
    with pytest.raises(signals.Interrupted):
        _fit(_member(digits, 0, path=path))
    state = load_checkpoint(path)
    assert state["partial"]["next"] == 4 * 64 and state["scheduler"]["last_epoch"] == batches + 4
    resumed = _member(digits, 0, path=path)
    history = _fit(resumed)
    strip = [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in history]
    assert strip == [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in ref_history]
    for a, b in zip(reference.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert resumed.scheduler.last_epoch == reference.scheduler.last_epoch

"""The trainer's own figures and options, checked on small concrete cases."""

import pytest
import torch

from lossbench.data import DATASETS
from lossbench.losses.comp_sum import CrossEntropy
from lossbench.models.mlp import MLP
from lossbench.reweight.base import Reweighter
from lossbench.train.trainer import Trainer, _train_stats


def test_train_stats_by_hand():
    order = torch.tensor([0, 1, 2, 3])
    losses = torch.tensor([1.0, 2.0, 3.0, 6.0])
    pred = torch.tensor([1, 2, 0, 3])
    y_noisy = torch.tensor([1, 0, 0, 3])  # samples 1 and 3 carry noisy labels
    y_clean = torch.tensor([1, 2, 0, 0])
    stats = _train_stats(order, losses, pred, y_noisy, y_clean, y_noisy != y_clean)
    assert stats["train_loss"] == pytest.approx(3.0)
    assert stats["train_acc"] == pytest.approx(3 / 4)        # 0, 2, 3 match the noisy label
    assert stats["train_clean_acc"] == pytest.approx(3 / 4)  # 0, 1, 2 match the clean label
    assert stats["memorization"] == pytest.approx(1 / 2)     # of noisy 1 and 3, only 3 is fitted


def _fit(**options):
    split = DATASETS.get("digits")()
    torch.manual_seed(0)
    model = MLP(split.input_shape, split.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
    trainer = Trainer(epochs=2, device="cpu", progress="none", checkpoint_every=0, **options)
    return trainer.fit(model, CrossEntropy(), Reweighter(), opt, sched, split, seed=0)


def test_gradient_clipping_bounds_the_step():
    free = _fit()
    clipped = _fit(grad_clip=1e-6)
    assert free[-1]["test_acc"] > 0.8
    assert clipped[-1]["test_acc"] < 0.5  # steps of norm 1e-6 barely move the weights


def test_gradient_clipping_covers_a_trainable_loss(monkeypatch):
    """grad_clip bounds the joint norm of everything the optimizer steps, LegendreTron's link included."""
    from torch import nn

    from lossbench.losses.learned import LegendreTron

    split = DATASETS.get("digits")()
    torch.manual_seed(0)
    model = MLP(split.input_shape, split.num_classes)
    loss = LegendreTron(num_classes=split.num_classes)
    opt = torch.optim.SGD([{"params": list(model.parameters())}, *loss.parameter_groups()], lr=0.1)
    sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
    seen: list[set[int]] = []
    clip = nn.utils.clip_grad_norm_

    def recording(params, max_norm, *args, **kwargs):
        params = list(params)
        seen.append({id(p) for p in params})
        return clip(params, max_norm, *args, **kwargs)

    monkeypatch.setattr(nn.utils, "clip_grad_norm_", recording)
    Trainer(epochs=1, device="cpu", progress="none", checkpoint_every=0, grad_clip=1.0).fit(
        model, loss, Reweighter(), opt, sched, split, seed=0)
    trained = [p for p in loss.parameters() if p.requires_grad]
    assert seen and all(ids == {id(p) for p in [*model.parameters(), *trained]} for ids in seen)
    assert trained and all(id(p) in seen[0] for p in trained)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"grad_clip": -1.0}, "grad_clip must be positive"),
        ({"precision": "16-mixed"}, "16-mixed needs a CUDA device"),
        ({"precision": "fp8"}, "unknown trainer.precision 'fp8'; known: 32, bf16, 16-mixed"),
        ({"device": "tpu"}, "unknown trainer.device 'tpu'"),
    ],
)
def test_bad_trainer_options(options, message):
    with pytest.raises(ValueError, match=message):
        Trainer(device=options.pop("device", "cpu"), **options)


def test_a_loss_that_declares_clipping_is_clipped(monkeypatch):
    """ce_clip's max_norm reaches clip_grad_norm_ in every step, the smaller of it and trainer.grad_clip."""
    from torch import nn

    from lossbench.losses.phuber import ClippedCrossEntropy

    split = DATASETS.get("digits")()
    bounds: list[float] = []
    clip = nn.utils.clip_grad_norm_

    def recording(params, max_norm, *args, **kwargs):
        bounds.append(max_norm)
        return clip(params, max_norm, *args, **kwargs)

    monkeypatch.setattr(nn.utils, "clip_grad_norm_", recording)
    for trainer_clip, expected in ((None, 0.25), (0.1, 0.1), (1.0, 0.25)):
        bounds.clear()
        torch.manual_seed(0)
        model = MLP(split.input_shape, split.num_classes)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
        Trainer(epochs=1, device="cpu", progress="none", checkpoint_every=0, grad_clip=trainer_clip).fit(
            model, ClippedCrossEntropy(max_norm=0.25), Reweighter(), opt, sched, split, seed=0)
        assert bounds and set(bounds) == {expected}


def test_epoch_checkpoints_skip_fsync_unless_seconds_passed_since_the_last_synced_one(monkeypatch, tmp_path):
    """fsync guards against the machine's crash, not the process's: short epochs skip it (issue 30)."""
    import lossbench.core.io
    from lossbench.train import trainer as trainer_module

    synced = []
    monkeypatch.setattr(lossbench.core.io.os, "fsync", lambda fd: synced.append(fd))

    def fit():
        split = DATASETS.get("digits")()
        torch.manual_seed(0)
        model = MLP(split.input_shape, split.num_classes, hidden=(16,))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
        (tmp_path / "checkpoint.pt").unlink(missing_ok=True)
        Trainer(epochs=3, device="cpu", progress="none").fit(
            model, CrossEntropy(), Reweighter(), opt, sched, split, seed=0,
            checkpoint_path=tmp_path / "checkpoint.pt")

    fit()
    assert synced == [] and (tmp_path / "checkpoint.pt").is_file()
    monkeypatch.setattr(trainer_module, "SYNC_EVERY_S", 0.0)  # as if every epoch took long
    fit()
    assert len(synced) == 3


def test_float64_trains_the_model_and_a_trainable_loss_in_float64():
    """trainer.dtype=float64 (the official LegendreTron code's precision): the model's and the link's
    parameters are float64, the float32 features are cast on the way in, the predictions go through
    the link in float64; the results differ from float32's only by rounding."""
    from lossbench.losses.learned import LegendreTron

    split = DATASETS.get("digits")()
    runs = {}
    for dtype in ("float32", "float64"):
        trainer = Trainer(epochs=2, device="cpu", progress="none", checkpoint_every=0, dtype=dtype)
        torch.manual_seed(0)
        model = trainer.prepare_model(MLP(split.input_shape, split.num_classes, hidden=(32,)))
        loss = trainer.prepare_loss(LegendreTron(num_classes=split.num_classes))
        opt = torch.optim.Adam([{"params": list(model.parameters())}, *loss.parameter_groups()], lr=1e-2)
        sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
        history = trainer.fit(model, loss, Reweighter(), opt, sched, split, seed=0)
        params = [*model.parameters(), *loss.parameters()]
        assert {p.dtype for p in params} == {trainer.torch_dtype}
        runs[dtype] = history[-1]
    assert runs["float64"]["test_acc"] == pytest.approx(runs["float32"]["test_acc"], abs=0.02)
    assert runs["float64"]["test_nll"] != runs["float32"]["test_nll"]


def test_dtype_is_checked():
    with pytest.raises(ValueError, match="unknown trainer.dtype 'float16'; known: float32, float64"):
        Trainer(device="cpu", dtype="float16")
    with pytest.raises(ValueError, match="takes no mixed precision"):
        Trainer(device="cpu", dtype="float64", precision="bf16")

"""Conv nets train on CPU with trainer.precision=bf16 and trainer.channels_last=true."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from lossbench.data.synthetic import synthetic
from lossbench.losses.comp_sum import CrossEntropy
from lossbench.models.resnet import PreActResNet18
from lossbench.reweight.base import NoReweighting
from lossbench.train.trainer import Trainer


@pytest.mark.parametrize("precision", ["bf16", "32"])
def test_trainer_fits_a_resnet_in_bf16_channels_last(precision):
    split = synthetic(num_samples=80, num_classes=3, test_size=16, val_size=16, image_shape=[3, 16, 16],
                      augment="crop_flip")
    trainer = Trainer(epochs=1, batch_size=16, device="cpu", precision=precision, channels_last=True,
                      progress="none", checkpoint_every=0)
    torch.manual_seed(0)
    model = PreActResNet18(split.input_shape, split.num_classes, widths=(8, 16, 16, 32))
    model = trainer.prepare_model(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    history = trainer.fit(model, CrossEntropy(), NoReweighting(), optimizer, scheduler, split, seed=0)
    assert len(history) == 1
    assert math.isfinite(history[0]["train_loss"]) and 0 <= history[0]["test_acc"] <= 1
    stem = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert stem.weight.is_contiguous(memory_format=torch.channels_last)


def test_run_cnn4_bf16_channels_last(run_once):
    out, summary, _ = run_once(
        "dataset=synthetic", "dataset.image_shape=[1,28,28]", "dataset.num_samples=120",
        "dataset.augment=crop_flip", "model=cnn4", "trainer.device=cpu", "trainer.epochs=1",
        "trainer.batch_size=32", "trainer.precision=bf16", "trainer.channels_last=true",
    )
    assert summary["status"] == "completed"
    assert summary["num_train"] == 86 and 0.0 <= summary["test_acc"] <= 1.0
    cfg = OmegaConf.load(out / ".hydra" / "config.yaml")
    assert cfg.trainer.precision == "bf16" and cfg.trainer.channels_last is True

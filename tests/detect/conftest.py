"""Detection fixtures: a DetectContext over small labelled data, without a run around it."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from lossbench import noise as noise_lib
from lossbench.conf import CONF_DIR
from lossbench.data.digits import digits
from lossbench.detect.base import DetectContext
from lossbench.detect.runner import detection_context
from lossbench.models.mlp import MLP
from lossbench.train.trainer import Trainer


def _noisy_digits(noise: str, seed: int = 0):
    from hydra.utils import instantiate

    split = digits()
    model = instantiate(OmegaConf.load(CONF_DIR / "noise" / f"{noise}.yaml"))
    return noise_lib.apply(model, split, seed)


@pytest.fixture(scope="session")
def digits_noisy():
    """``digits_noisy(noise)``: (split, noisy labels) of digits under conf/noise/NOISE.yaml."""
    cache = {}

    def get(noise: str):
        if noise not in cache:
            cache[noise] = _noisy_digits(noise)
        return cache[noise]

    return get


def context_for(split, seed: int = 0, epochs_trainer: int = 10) -> DetectContext:
    """A DetectContext whose models are small MLPs trained with SGD (as the run's would be)."""
    trainer = Trainer(epochs=epochs_trainer, batch_size=64, device="cpu", progress="none", checkpoint_every=0)

    def make_model(s):
        return MLP(s.input_shape, s.num_classes, hidden=[64])

    def train(model, s, epochs):
        from dataclasses import replace

        from lossbench.losses.comp_sum import CrossEntropy
        from lossbench.reweight.base import Reweighter

        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
        replace(trainer, epochs=int(epochs)).fit(model, CrossEntropy(), Reweighter(), opt, sched, s, seed)
        return model

    return detection_context(split, seed, torch.device("cpu"), 2048, make_model, train)


@pytest.fixture
def make_context():
    return context_for

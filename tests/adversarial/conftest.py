"""Helpers for the adversarial tests: digits on CPU, a tiny MLP, a few epochs, in process."""

from __future__ import annotations

import pytest
import torch

from lossbench.data.digits import digits
from lossbench.losses.comp_sum import CrossEntropy
from lossbench.models.mlp import MLP
from lossbench.reweight.base import Reweighter
from lossbench.train.trainer import Trainer

TIMING = {"train_seconds", "throughput", "seconds"}


@pytest.fixture(scope="session")
def digits_split():
    return digits()


@pytest.fixture
def fit_digits(digits_split):
    """``fit_digits(adversarial=None, epochs=8, seed=0, **trainer) -> (model, history, trainer)``."""

    def fit(adversarial=None, epochs: int = 8, seed: int = 0, loss=None, reweight=None, robust=None,
            hidden=(64,), dropout: float = 0.0, checkpoint_path=None, sinks=(), lr: float = 0.1):
        trainer = Trainer(epochs=epochs, batch_size=64, device="cpu", progress="none",
                          checkpoint_every=1 if checkpoint_path else 0)
        torch.manual_seed(seed)
        model = MLP(digits_split.input_shape, 10, hidden=hidden, dropout=dropout)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        if adversarial is not None:
            adversarial.setup(digits_split)
        if robust is not None:
            robust.setup(digits_split)
        history = trainer.fit(model, loss or CrossEntropy(), reweight or Reweighter(), optimizer, scheduler,
                              digits_split, seed, sinks=sinks, checkpoint_path=checkpoint_path,
                              checkpoint_meta={"test": 1} if checkpoint_path else None,
                              adversarial=adversarial, robust=robust)
        return model, [{k: v for k, v in r.items() if k not in TIMING} for r in history], trainer

    return fit

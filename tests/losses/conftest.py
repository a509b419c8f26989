"""Fixtures for the loss tests: build a loss from its YAML, the way a run does."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from lossbench.conf import CONF_DIR
from lossbench.lifecycle.builders import build_loss
from lossbench.losses.base import Loss

LOSS_CONF = CONF_DIR / "loss"


NUM_TRAIN = 64  # the training-set size given to losses with per-sample state


def load_loss(name: str, num_classes: int = 10, num_train: int = NUM_TRAIN, **overrides) -> Loss:
    """conf/loss/NAME.yaml with ``overrides`` merged in, instantiated by builders.build_loss."""
    cfg = OmegaConf.merge(OmegaConf.load(LOSS_CONF / f"{name}.yaml"), overrides)
    return build_loss(cfg, num_classes, num_train)


@pytest.fixture
def make_loss():
    """``make_loss(name, **overrides)``: a loss as a run would build it from conf/loss/NAME.yaml."""
    return load_loss

"""Fixtures for the loss tests: build a loss from its YAML, the way a run does."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from lossbench.conf import CONF_DIR
from lossbench.losses.base import Loss
from lossbench.run import build_loss

LOSS_CONF = CONF_DIR / "loss"


def load_loss(name: str, num_classes: int = 10, **overrides) -> Loss:
    """conf/loss/NAME.yaml with ``overrides`` merged in, instantiated by run.build_loss."""
    cfg = OmegaConf.merge(OmegaConf.load(LOSS_CONF / f"{name}.yaml"), overrides)
    return build_loss(cfg, num_classes)


@pytest.fixture
def make_loss():
    """``make_loss(name, **overrides)``: a loss as a run would build it from conf/loss/NAME.yaml."""
    return load_loss

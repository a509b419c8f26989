"""A Hydra job context for code that asks HydraConfig which launcher runs it."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig


@pytest.fixture
def hydra_job():
    """``hydra_job(*overrides, multirun=True)``: HydraConfig as a job of that (multi)run sees it."""

    def enter(*overrides: str, multirun: bool = True):
        mode = "MULTIRUN" if multirun else "RUN"
        with initialize_config_module(config_module="lossbench.conf", version_base="1.3"):
            cfg = compose("config", return_hydra_config=True,
                          overrides=[f"hydra.mode={mode}", "hydra.job.num=3", *overrides])
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield enter
    HydraConfig.instance().cfg = None

"""Helpers for the reweighting tests: a minimal setup context without a dataset."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lossbench.losses.comp_sum import CrossEntropy
from lossbench.reweight.base import ReweightContext


@pytest.fixture
def make_ctx():
    """``make_ctx(T, y_noisy=None, loss=None)``: a ReweightContext on CPU with only labels."""

    def make(T, y_noisy=None, loss=None) -> ReweightContext:
        T = np.asarray(T, dtype=np.float64)
        c = T.shape[0]
        y = torch.arange(c).repeat(4) if y_noisy is None else torch.as_tensor(y_noisy)
        split = SimpleNamespace(num_classes=c, y_train_noisy=y)
        # a detector's output for the strategies that train on one: every third sample flagged
        n = max(len(y), 64)  # the tests index batches of up to 64 samples
        flags = torch.arange(n) % 3 == 0
        detection = SimpleNamespace(flags=flags, scores=torch.linspace(0.0, 1.0, n))
        return ReweightContext(split=split, loss=loss or CrossEntropy(), true_T=T,
                               device=torch.device("cpu"), seed=0, detection=detection)

    return make

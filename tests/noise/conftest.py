"""Helpers of the noise tests: balanced label sets and binomial error bounds."""

from __future__ import annotations

import hashlib
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch


def shuffled_labels(n: int, num_classes: int, seed: int = 123) -> torch.Tensor:
    """n labels, as balanced as n allows, in a seeded random order."""
    y = torch.arange(n) % num_classes
    return y[torch.randperm(n, generator=torch.Generator().manual_seed(seed))]


def within_binomial(observed: float, p: float, n: int, sds: float = 4.0) -> bool:
    """|observed - p| within ``sds`` standard deviations of a binomial proportion over n."""
    return abs(observed - p) <= sds * math.sqrt(max(p * (1 - p), 0.0) / n) + 1e-12


def assert_T_close(realized: np.ndarray, expected: np.ndarray, y_clean: torch.Tensor, sds: float = 5.0):
    """Each realized entry within ``sds`` binomial sds of the expected one (row n = class count).

    Three counts of slack cover entries whose expected count is a handful, where
    the normal approximation understates the tail (C = 100: thousands of them).
    """
    counts = np.maximum(torch.bincount(y_clean, minlength=len(expected)).numpy(), 1)[:, None]
    sd = np.sqrt(np.clip(expected * (1 - expected), 0, None) / counts)
    bound = sds * sd + np.where(expected > 0, 3.0 / counts, 0.0) + 1e-12
    gap = np.abs(realized - expected)
    worst = np.unravel_index(np.argmax(gap - bound), gap.shape)
    assert (gap <= bound).all(), (
        f"T[{worst}] realized {realized[worst]:.4f}, expected {expected[worst]:.4f} (sd {sd[worst]:.4f})"
    )


def label_hash(y: torch.Tensor, k: int = 1000) -> str:
    """Short sha256 of the first k labels as little-endian int64."""
    return hashlib.sha256(y[:k].numpy().astype("<i8").tobytes()).hexdigest()[:16]


@pytest.fixture
def gen():
    """``gen(seed)``: a fresh CPU generator."""
    return lambda seed=0: torch.Generator().manual_seed(seed)


@pytest.fixture
def nt():
    """The helpers above as one namespace (test modules cannot import a conftest)."""
    return SimpleNamespace(
        shuffled_labels=shuffled_labels,
        within_binomial=within_binomial,
        assert_T_close=assert_T_close,
        label_hash=label_hash,
    )

"""The noise-model contract: clean labels in, noisy labels and transition matrices out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from lossbench.registry import Registry

NOISE_MODELS: Registry = Registry("noise model")
register_noise = NOISE_MODELS.register


@dataclass
class NoisyLabels:
    """What a noise model made: labels, which were changed, and T both ways.

    ``expected_T[i, j]`` = P(noisy = j | clean = i) that the model meant;
    ``realized_T`` is the empirical one of the labels it drew.
    """

    y_noisy: Tensor
    is_noisy: Tensor
    expected_T: np.ndarray
    realized_T: np.ndarray

    @property
    def rate(self) -> float:
        return float(self.is_noisy.float().mean()) if len(self.is_noisy) else 0.0


def realized_transition(y_clean: Tensor, y_noisy: Tensor, num_classes: int) -> np.ndarray:
    """Row-normalized confusion counts of (clean, noisy) label pairs."""
    counts = torch.zeros(num_classes, num_classes, dtype=torch.float64)
    counts.index_put_((y_clean, y_noisy), torch.ones(len(y_clean), dtype=torch.float64), accumulate=True)
    rows = counts.sum(1, keepdim=True).clamp_min(1)
    return (counts / rows).numpy()


class NoiseModel:
    """Base class. Subclasses implement ``corrupt`` and, if needed, ``check``.

    ``kind`` is a short tag for reports ("clean", "symmetric", ...); ``rate``
    the asked-for noise rate (None for real human noise).
    """

    kind: ClassVar[str] = ""
    needs_features: ClassVar[bool] = False

    def __init__(self, rate: float = 0.0) -> None:
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"noise rate must be in [0, 1), got {rate}")
        self.rate = float(rate)

    def check(self, num_classes: int, dataset: str) -> None:
        """Refuse, before training, a setting this model cannot produce."""

    def corrupt(
        self,
        y_clean: Tensor,
        num_classes: int,
        features: Tensor | None,
        generator: torch.Generator,
    ) -> NoisyLabels:
        raise NotImplementedError

    def __call__(
        self,
        y_clean: Tensor,
        num_classes: int,
        features: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> NoisyLabels:
        generator = generator or torch.Generator().manual_seed(0)
        return self.corrupt(y_clean.long().cpu(), num_classes, features, generator)

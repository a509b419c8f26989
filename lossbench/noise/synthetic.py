"""Synthetic label noise: clean and symmetric."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lossbench.noise.base import NoiseModel, NoisyLabels, realized_transition, register_noise


@register_noise("clean")
class Clean(NoiseModel):
    """No noise: the identity transition matrix."""

    kind = "clean"

    def __init__(self) -> None:
        super().__init__(0.0)

    def corrupt(self, y_clean, num_classes, features, generator) -> NoisyLabels:
        eye = np.eye(num_classes)
        return NoisyLabels(y_clean.clone(), torch.zeros(len(y_clean), dtype=torch.bool), eye, eye)


@register_noise("symmetric")
class Symmetric(NoiseModel):
    """Symmetric (uniform) noise at rate eta.

    ``convention="flip"`` (default; code of Ma et al. 2020, "Normalized Loss
    Functions for Deep Learning with Noisy Labels"): each label is, with
    probability eta, replaced by a uniformly chosen *other* class, so
    T = (1 - eta) I + eta / (C - 1) (1 - I).
    ``convention="uniform"``: with probability eta the label is redrawn from
    all C classes (may keep the true one): T = (1 - eta) I + eta / C 1.
    """

    kind = "symmetric"

    def __init__(self, rate: float, convention: str = "flip") -> None:
        super().__init__(rate)
        if convention not in ("flip", "uniform"):
            raise ValueError(f"symmetric noise convention must be 'flip' or 'uniform', got {convention!r}")
        self.convention = convention

    def check(self, num_classes: int, dataset: str) -> None:
        if self.convention == "flip" and self.rate >= (num_classes - 1) / num_classes:
            raise ValueError(
                f"symmetric flip noise at rate {self.rate} with {num_classes} classes leaves the "
                f"true class no more likely than any other; use a rate below "
                f"{(num_classes - 1) / num_classes:.3f}"
            )

    def expected(self, num_classes: int) -> np.ndarray:
        c, eta = num_classes, self.rate
        if self.convention == "flip":
            return (1 - eta) * np.eye(c) + eta / (c - 1) * (1 - np.eye(c))
        return (1 - eta) * np.eye(c) + eta / c * np.ones((c, c))

    def corrupt(self, y_clean: Tensor, num_classes: int, features, generator) -> NoisyLabels:
        n = len(y_clean)
        hit = torch.rand(n, generator=generator) < self.rate
        if self.convention == "flip":
            shift = torch.randint(1, num_classes, (n,), generator=generator)
            drawn = (y_clean + shift) % num_classes
        else:
            drawn = torch.randint(0, num_classes, (n,), generator=generator)
        y_noisy = torch.where(hit, drawn, y_clean)
        return NoisyLabels(
            y_noisy,
            y_noisy != y_clean,
            self.expected(num_classes),
            realized_transition(y_clean, y_noisy, num_classes),
        )

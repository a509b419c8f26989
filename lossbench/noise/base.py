"""The noise-model contract: clean labels in, noisy labels and transition matrices out."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from lossbench.core.registry import Registry

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
        return float(self.is_noisy.double().mean()) if len(self.is_noisy) else 0.0


def realized_transition(y_clean: Tensor, y_noisy: Tensor, num_classes: int) -> np.ndarray:
    """Row-normalized confusion counts of (clean, noisy) label pairs."""
    counts = torch.zeros(num_classes, num_classes, dtype=torch.float64)
    counts.index_put_((y_clean, y_noisy), torch.ones(len(y_clean), dtype=torch.float64), accumulate=True)
    rows = counts.sum(1, keepdim=True).clamp_min(1)
    return (counts / rows).numpy()


def expected_noise_rate(expected_T: np.ndarray, y_clean: Tensor) -> float:
    """The flip rate T implies for these clean labels: mean over samples of 1 - T[y, y]."""
    if len(y_clean) == 0:
        return 0.0
    diag = torch.tensor(np.diag(expected_T), dtype=torch.float64)
    return float((1.0 - diag[y_clean.long()]).mean())


# Reproducibility: every random number a noise model uses comes from ``uniform``,
# i.e. from torch's CPU Mersenne Twister (torch.Generator) drawn serially in
# float64, and is turned into other distributions by our own inverse-CDF code.
# The labels therefore depend only on the seed, not on the machine, BLAS or
# vectorized kernels (tests/noise pin known outputs).


def uniform(generator: torch.Generator, *shape: int) -> Tensor:
    """Float64 uniforms in (0, 1) from a CPU ``torch.Generator``."""
    return torch.rand(*shape, generator=generator, dtype=torch.float64).clamp_min_(2.0**-60)


def standard_normal(generator: torch.Generator, *shape: int) -> Tensor:
    """Float64 N(0, 1) draws by the inverse normal CDF of ``uniform`` draws."""
    return torch.special.ndtri(uniform(generator, *shape))


def draw_categorical(probs: Tensor, u: Tensor) -> Tensor:
    """Row-wise inverse-CDF sampling: the class j with cum[j-1] <= u < cum[j].

    ``probs`` is [N, C] (rows non-negative, not all zero), ``u`` [N] uniforms in
    [0, 1). Rows are rescaled so their cumulative sum ends at exactly 1, so a
    zero-probability class is never drawn.
    """
    cum = probs.double().cumsum(1)
    cum = cum / cum[:, -1:]
    index = torch.searchsorted(cum, u.double()[:, None], right=True).squeeze(1)
    return index.clamp_max_(probs.shape[1] - 1)


def check_rate(rate: object, what: str = "noise rate") -> float:
    """``rate`` as a float in [0, 1), or a ValueError saying why not."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate):
        raise ValueError(f"{what} must be a number in [0, 1), got {rate!r}")
    if not 0.0 <= rate < 1.0:
        raise ValueError(
            f"{what} must be in [0, 1): it is the probability that a label is corrupted, "
            f"and at rate >= 1 no clean label would be left; got {rate}"
        )
    return float(rate)


class NoiseModel:
    """Base class. Subclasses implement ``corrupt`` and, if needed, ``check``.

    ``kind`` is a short tag for reports ("clean", "symmetric", ...); ``rate``
    the asked-for noise rate (None for real human noise). Constructors check
    what they can alone; ``check(num_classes, dataset)`` what needs the
    dataset, and ``noise.apply`` calls it before anything else, so an
    impossible setting is refused before training.
    """

    kind: ClassVar[str] = ""
    needs_features: ClassVar[bool] = False
    class_names: list[str] | None = None

    def __init__(self, rate: float | None = 0.0) -> None:
        self.rate = None if rate is None else check_rate(rate)

    def describe(self) -> str:
        """A short phrase for messages, e.g. "symmetric noise at rate 0.6"."""
        return f"{self.kind} noise" + ("" if self.rate is None else f" at rate {self.rate:g}")

    def set_class_names(self, names: list[str] | None) -> None:
        """The dataset's class names in index order (``noise.apply`` gives them before ``check``), for
        a model whose setting names classes (``swap``)."""
        self.class_names = None if names is None else [str(n) for n in names]

    def check(self, num_classes: int, dataset: str) -> None:
        """Refuse, before training, a setting this model cannot produce."""
        if num_classes < 2:
            raise ValueError(f"{self.describe()} needs at least 2 classes, got {num_classes}")

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
        if generator.device.type != "cpu":
            raise ValueError("noise models draw from a CPU torch.Generator (reproducible across machines)")
        return self.corrupt(y_clean.long().cpu(), num_classes, features, generator)

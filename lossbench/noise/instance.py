"""Instance-dependent label noise (IDN): the flip rate and direction depend on the input."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from lossbench.noise.base import (
    NoiseModel,
    NoisyLabels,
    draw_categorical,
    realized_transition,
    register_noise,
    standard_normal,
    uniform,
)

_CHUNK = 4096


def truncated_normal(u: Tensor, mean: float, std: float, low: float = 0.0, high: float = 1.0) -> Tensor:
    """Inverse-CDF draws of N(mean, std^2) truncated to [low, high] from uniforms ``u``."""
    a = torch.special.ndtr(torch.tensor((low - mean) / std, dtype=torch.float64))
    b = torch.special.ndtr(torch.tensor((high - mean) / std, dtype=torch.float64))
    z = torch.special.ndtri((a + u * (b - a)).clamp(2.0**-60, 1 - 2.0**-53))
    return (mean + std * z).clamp_(low, high)


def truncated_normal_mean(mean: float, std: float, low: float = 0.0, high: float = 1.0) -> float:
    """E[q] of N(mean, std^2) truncated to [low, high]: mean + std (phi(a) - phi(b)) / (Phi(b) - Phi(a))."""
    a, b = (low - mean) / std, (high - mean) / std

    def pdf(x: float) -> float:
        return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)

    def cdf(x: float) -> float:
        return 0.5 * math.erfc(-x / math.sqrt(2))

    return mean + std * (pdf(a) - pdf(b)) / (cdf(b) - cdf(a))


def _standardization(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-dimension mean and std (population; 1 where constant) of rows of ``x``, in float64."""
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    total_sq = torch.zeros(x.shape[1], dtype=torch.float64)
    for chunk in x.split(_CHUNK):
        chunk = chunk.double()
        total += chunk.sum(0)
        total_sq += chunk.square().sum(0)
    mean = total / len(x)
    std = (total_sq / len(x) - mean.square()).clamp_min(0).sqrt()
    return mean, torch.where(std > 1e-12, std, torch.ones_like(std))


@register_noise("instance")
class InstanceDependent(NoiseModel):
    """Instance-dependent noise of Xia et al. 2020, "Part-dependent Label Noise: Towards
    Instance-dependent Label Noise", NeurIPS (the generator of their code, used since as "IDN").

    For sample n of clean class y with input x_n (flattened, each dimension
    standardized over the training pool):
    - flip rate q_n ~ N(eta, std^2) truncated to [0, 1] (std = 0.1);
    - a random projection W_y in R^{d x C} per clean class, entries N(0, 1);
    - p = softmax(x_n W_y) with the true class masked out (-inf), scaled so the
      other classes share q_n and the true class keeps 1 - q_n;
    - the noisy label ~ p.
    The realized rate is about E[q_n], which truncation moves slightly towards
    0.5 (0.2055 for eta = 0.2). Xia et al. normalize pixels per channel with
    dataset statistics; standardizing each input dimension is the
    dataset-agnostic equivalent. ``expected_T`` is the average of the
    per-sample rows p over the samples of each clean class.
    Random draws, in order: q (N), then W_0 .. W_{C-1}, then the labels (N).
    """

    kind = "instance"
    needs_features = True

    def __init__(self, rate: float, std: float = 0.1) -> None:
        super().__init__(rate)
        if not (isinstance(std, (int, float)) and math.isfinite(std) and std > 0):
            raise ValueError(f"instance-dependent noise needs std > 0 for the flip-rate spread, got {std!r}")
        self.std = float(std)

    def transition_rows(
        self, y_clean: Tensor, num_classes: int, features: Tensor, generator: torch.Generator
    ) -> Tensor:
        """The per-sample rows p_n = P(noisy = . | x_n, y_n), [N, C] float64."""
        n = len(y_clean)
        if features is None:
            raise ValueError("instance-dependent noise needs the training features")
        if len(features) != n:
            raise ValueError(f"instance-dependent noise got {len(features)} feature rows for {n} labels")
        x = features.reshape(n, -1)
        mean, std = _standardization(x)
        q = truncated_normal(uniform(generator, n), self.rate, self.std)
        rows = torch.empty(n, num_classes, dtype=torch.float64)
        for c in range(num_classes):
            w = standard_normal(generator, x.shape[1], num_classes)
            members = (y_clean == c).nonzero().squeeze(1)
            for index in members.split(_CHUNK):
                logits = ((x[index].double() - mean) / std) @ w
                logits[:, c] = -math.inf
                p = logits.softmax(1) * q[index, None]
                p[:, c] = 1.0 - q[index]
                rows[index] = p
        return rows

    def corrupt(
        self, y_clean: Tensor, num_classes: int, features: Tensor | None, generator: torch.Generator
    ) -> NoisyLabels:
        rows = self.transition_rows(y_clean, num_classes, features, generator)
        y_noisy = draw_categorical(rows, uniform(generator, len(y_clean)))
        expected = np.eye(num_classes)
        for c in range(num_classes):
            members = y_clean == c
            if members.any():
                expected[c] = rows[members].mean(0).numpy()
        return NoisyLabels(
            y_noisy,
            y_noisy != y_clean,
            expected,
            realized_transition(y_clean, y_noisy, num_classes),
        )

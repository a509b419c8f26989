"""Label-noise models. Importing this package registers every model."""

from __future__ import annotations

import torch

from lossbench.data.split import Split
from lossbench.noise import human, instance, synthetic  # noqa: F401  (registration)
from lossbench.noise.base import NOISE_MODELS, NoiseModel, NoisyLabels, register_noise


def apply(model: NoiseModel, split: Split, seed: int) -> tuple[Split, NoisyLabels]:
    """Corrupt the training pool (train + validation) of ``split``; test is untouched.

    ``model.check`` runs first, so an impossible setting is refused before any
    draw. The noise is drawn over the original training set in its original
    order from a CPU generator seeded with ``seed`` (the run's ``noise_seed``),
    so it depends neither on how validation is carved nor on the machine.
    """
    model.set_class_names(split.class_names)
    model.check(split.num_classes, split.name)
    features = split.pool_features() if model.needs_features else None
    generator = torch.Generator().manual_seed(int(seed))
    noisy = model(split.pool_labels(), split.num_classes, features, generator)
    return split.with_noisy_pool_labels(noisy.y_noisy), noisy


__all__ = ["NOISE_MODELS", "NoiseModel", "NoisyLabels", "apply", "register_noise"]

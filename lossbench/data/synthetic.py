"""A seeded Gaussian-mixture classification problem of any size, as features or as images."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lossbench.data.registry import register_dataset
from lossbench.data.split import Split, carve_validation, split_from_pool
from lossbench.data.transforms import check_augment

# uint8 image mode: pixel = 127.5 + PIXEL_SCALE * x, clipped to 0..255.
PIXEL_SCALE = 32.0
_CHUNK = 8192


@register_dataset("synthetic")
def synthetic(
    num_samples: int = 2000,
    num_features: int = 20,
    num_classes: int = 10,
    separation: float = 3.0,
    test_size: float | int = 0.2,
    val_size: float | int = 0.1,
    seed: int = 0,
    image_shape: Sequence[int] | None = None,
    augment: str | None = None,
    name: str = "synthetic",
) -> Split:
    """Balanced mixture of C isotropic unit Gaussians, one per class.

    x = mu_y + e with e ~ N(0, I_d) and class means mu_c ~ N(0, s^2 / (2d) I_d),
    so two class means lie about ``separation`` (s) within-class standard
    deviations apart whatever d. Labels are balanced (n / C each, shuffled).
    ``test_size`` is held out as the clean test set, then ``val_size`` of the
    rest is validation; everything is drawn from ``seed``.

    With ``image_shape`` (e.g. [3, 32, 32]) the d = C*H*W features become
    uint8 images, pixel = clip(127.5 + 32 x, 0, 255), normalized back with
    mean 0.5 and std 32/255; ``augment`` then applies as for real images. This
    gives CIFAR-shaped data for timings and tests (an epoch costs the same
    whatever the pixels). ``name`` is the Split's name (the config's name).
    """
    if num_samples < 2 or num_classes < 2:
        raise ValueError(f"synthetic needs num_samples >= 2 and num_classes >= 2, got {num_samples}, "
                         f"{num_classes}")
    if separation < 0:
        raise ValueError(f"synthetic separation must be >= 0, got {separation}")
    shape = tuple(int(s) for s in image_shape) if image_shape is not None else (int(num_features),)
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise ValueError(f"synthetic image_shape must be [C, H, W], got {list(shape)}")
    augment = check_augment(augment)
    if augment is not None and len(shape) != 3:
        raise ValueError("synthetic augmentation needs image_shape=[C, H, W]")
    d = math.prod(shape)
    g = torch.Generator().manual_seed(int(seed))
    means = torch.randn(num_classes, d, generator=g) * (separation / math.sqrt(2 * d))
    y = (torch.arange(num_samples) % num_classes)[torch.randperm(num_samples, generator=g)]
    dtype = torch.uint8 if len(shape) == 3 else torch.float32
    x = torch.empty(num_samples, d, dtype=dtype)
    for i in range(0, num_samples, _CHUNK):  # chunks keep CIFAR-sized draws small in memory
        rows = means[y[i : i + _CHUNK]] + torch.randn(len(y[i : i + _CHUNK]), d, generator=g)
        if dtype == torch.uint8:
            rows = rows.mul_(PIXEL_SCALE).add_(127.5).round_().clamp_(0, 255)
        x[i : i + _CHUNK] = rows.to(dtype)
    x = x.view(num_samples, *shape)
    pool_idx, test_idx = carve_validation(num_samples, test_size, int(seed) + 1)
    fields: dict = {"augment": augment, "class_names": [str(c) for c in range(num_classes)]}
    if len(shape) == 3:
        fields.update(mean=(0.5,) * shape[0], std=(PIXEL_SCALE / 255.0,) * shape[0])
    return split_from_pool(
        name, num_classes, x[pool_idx], y[pool_idx], x[test_idx], y[test_idx],
        val_size, int(seed) + 2, **fields,
    )

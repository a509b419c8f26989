"""Batch preprocessing on the device: uint8 -> normalized float, plus augmentation."""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench.data.split import Split


class BatchTransform:
    """Turns a batch sliced from a device-resident split into model input.

    uint8 images are scaled to [0, 1] and normalized with the split's mean/std;
    float features pass through. At training time the split's ``augment`` is
    applied by batch on the device.
    """

    def __init__(self, split: Split, channels_last: bool = False) -> None:
        self.augment = split.augment
        self.channels_last = channels_last
        self.mean = self.std = None
        if split.mean is not None:
            shape = (1, len(split.mean), 1, 1)
            device = split.x_train.device
            self.mean = torch.tensor(split.mean, device=device).view(shape)
            self.std = torch.tensor(split.std, device=device).view(shape)

    def __call__(self, x: Tensor, train: bool, generator: torch.Generator | None = None) -> Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
            if self.mean is not None:
                x = (x - self.mean) / self.std
        if train and self.augment is not None:
            x = augment_batch(x, self.augment, generator)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def augment_batch(x: Tensor, kind: str, generator: torch.Generator | None = None) -> Tensor:
    """Apply the named augmentation to a float image batch [B, C, H, W]."""
    raise ValueError(f"unknown augmentation '{kind}'; known: none")

"""Batch preprocessing on the device: uint8 -> normalized float, plus augmentation."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench.data.split import Split

# name -> (crop padding in pixels, random horizontal flip, largest rotation in degrees)
AUGMENTATIONS: dict[str, tuple[int, bool, float]] = {
    "crop": (4, False, 0.0),
    "flip": (0, True, 0.0),
    "crop_flip": (4, True, 0.0),
    "crop_flip_rotate": (4, True, 20.0),
}


def check_augment(augment: str | None) -> str | None:
    """``augment`` as a Split holds it: None (also for "none"/"null") or a known name."""
    if augment is None or str(augment).lower() in ("none", "null", ""):
        return None
    if augment not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation '{augment}'; known: none, {', '.join(AUGMENTATIONS)}")
    return str(augment)


class BatchTransform:
    """Turns a batch sliced from a device-resident split into model input.

    At training time the split's ``augment`` is applied first, by batch on the
    device (on uint8 images, so the crop padding is black, as in torchvision's
    ``RandomCrop(padding=4)`` before ``ToTensor``). Then uint8 images are
    scaled to [0, 1] and normalized with the split's mean/std; float features
    pass through.
    """

    def __init__(self, split: Split, channels_last: bool = False) -> None:
        self.augment = check_augment(split.augment)
        self.channels_last = channels_last
        # (x / 255 - mean) / std as one multiply and one add
        self.scale, self.shift = 1.0 / 255.0, None
        if split.mean is not None:
            shape = (1, len(split.mean), 1, 1)
            device = split.x_train.device
            std = torch.tensor(split.std, device=device).view(shape)
            self.scale = 1.0 / (255.0 * std)
            self.shift = -torch.tensor(split.mean, device=device).view(shape) / std

    def __call__(self, x: Tensor, train: bool, generator: torch.Generator | None = None) -> Tensor:
        """Model input for a batch: ``normalize(pixels(x, train, generator))`` in one pass."""
        if train and self.augment is not None:
            x = augment_batch(x, self.augment, generator)
        if x.dtype == torch.uint8:
            x = x.float().mul_(self.scale)
            if self.shift is not None:
                x = x.add_(self.shift)
        return self._layout(x)

    def pixels(self, x: Tensor, train: bool, generator: torch.Generator | None = None) -> Tensor:
        """The batch augmented (when ``train``) and in pixel space: uint8 images as floats in [0, 1];
        float features unchanged. Attacks perturb this representation."""
        if train and self.augment is not None:
            x = augment_batch(x, self.augment, generator)
        return x.float().mul_(1.0 / 255.0) if x.dtype == torch.uint8 else x

    def normalize(self, x: Tensor) -> Tensor:
        """Pixel-space input (see ``pixels``) to model input: (x - mean) / std for images."""
        if self.shift is not None:
            x = x * (self.scale * 255.0) + self.shift
        return self._layout(x)

    def _layout(self, x: Tensor) -> Tensor:
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def augment_batch(x: Tensor, kind: str, generator: torch.Generator | None = None) -> Tensor:
    """Apply the named augmentation to an image batch [B, C, H, W] (uint8 or float).

    ``crop``: zero-pad 4 pixels on each side and take a random HxW window per
    image; ``flip``: mirror each image left-right with probability 1/2;
    ``crop_flip``: both (the standard CIFAR augmentation of He et al. 2016,
    "Deep Residual Learning for Image Recognition"); ``crop_flip_rotate``: then
    a rotation by an angle uniform in [-20, 20] degrees (``rotate_batch``), as
    torchvision's ``RandomRotation(20)`` after crop and flip in the CIFAR-100
    code of Ma et al. 2020 and its SCE reproduction. Offsets, flips and angles
    are drawn from ``generator``, which must live on ``x``'s device; the window
    (and the mirroring) is taken with two gathers, so a batch costs a few kernels.
    """
    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation '{kind}'; known: none, {', '.join(AUGMENTATIONS)}")
    if x.ndim != 4:
        raise ValueError(f"augmentation '{kind}' needs images [B, C, H, W], got shape {tuple(x.shape)}")
    pad, flip, degrees = AUGMENTATIONS[kind]
    b, c, h, w = x.shape
    device = x.device
    cols = torch.arange(w, device=device).expand(b, w)
    if pad:
        x = F.pad(x, (pad, pad, pad, pad))
        rows = torch.arange(h, device=device) + torch.randint(
            0, 2 * pad + 1, (b, 1), device=device, generator=generator
        )
        cols = cols + torch.randint(0, 2 * pad + 1, (b, 1), device=device, generator=generator)
        x = x.gather(2, rows.view(b, 1, h, 1).expand(b, c, h, w + 2 * pad))
    if flip:
        mirrored = torch.rand(b, 1, device=device, generator=generator) < 0.5
        cols = torch.where(mirrored, cols.flip(1), cols)
    x = x.gather(3, cols.view(b, 1, 1, w).expand(b, c, h, w))
    if degrees:
        angles = (2 * torch.rand(b, device=device, generator=generator) - 1) * degrees
        x = rotate_batch(x, angles)
    return x


def rotate_batch(x: Tensor, degrees: Tensor) -> Tensor:
    """Each image of ``x`` [B, C, H, W] rotated counter-clockwise by ``degrees`` [B] about its centre,
    nearest neighbour, zeros outside: torchvision's ``rotate(img, angle, NEAREST)`` per image (equal
    pixel for pixel on tensors; PIL's rotate differs on about 0.1% of the pixels of a 32 x 32 image at
    20 degrees). uint8 images stay uint8."""
    b, c, h, w = x.shape
    a = degrees.to(torch.float32) * (math.pi / 180.0)
    cos, sin = torch.cos(a), torch.sin(a)
    # output -> input sampling positions in affine_grid's [-1, 1] coordinates (y down)
    theta = torch.stack([torch.stack([cos, -sin * (h / w), torch.zeros_like(a)], 1),
                         torch.stack([sin * (w / h), cos, torch.zeros_like(a)], 1)], 1)
    grid = F.affine_grid(theta, [b, c, h, w], align_corners=False)
    out = F.grid_sample(x.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out.round().to(x.dtype) if x.dtype == torch.uint8 else out.to(x.dtype)

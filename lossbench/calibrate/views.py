"""Transformed copies of each input, for calibrators that read the model on them (needs_views).

A view is a deterministic function of a pixel-space batch (lossbench.data.
transforms.BatchTransform.pixels: images as floats in [0, 1], features
unchanged) and a generator seeded per view, so the validation and test
splits get the same transformations and a run is reproducible.

Images, after Liu et al. 2024 ("Optimizing Calibration by Gaining Aware of
Prediction Correctness", official code liuyvchi/Correctness-aware-calibration,
which uses rotated, greyscaled and colour-jittered copies):
- ``rotate``: rotation by ``angle`` degrees (15) about the centre, zero fill;
- ``grey``: luminance 0.299 R + 0.587 G + 0.114 B in every channel; a
  single-channel image is already grey, so there it is a 3x3 box blur (a
  stated substitute: a mild change that keeps the digit);
- ``jitter``: brightness and contrast factors drawn per image in [0.6, 1.4]
  (torchvision ColorJitter(brightness=0.4, contrast=0.4)), then clipped to [0, 1].
Features (no image to transform; a stated substitute): ``noise<k>``, Gaussian
noise of k/10 times each feature's standard deviation over the batch's split
(``noise1``, ``noise2``, ``noise3``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

ViewOp = Callable[[Tensor, torch.Generator], Tensor]
IMAGE_VIEWS = ("rotate", "grey", "jitter")
FEATURE_VIEWS = ("noise1", "noise2", "noise3")


def rotate(x: Tensor, angle: float = 15.0) -> Tensor:
    """Rotate images [B, C, H, W] by ``angle`` degrees about their centre (bilinear, zeros outside)."""
    a = math.radians(angle)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]],
                         dtype=x.dtype, device=x.device).expand(len(x), 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def grey(x: Tensor) -> Tensor:
    """Luminance in every channel for RGB; a 3x3 box blur for single-channel images."""
    if x.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * weights).sum(1, keepdim=True).expand_as(x).contiguous()
    return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


def jitter(x: Tensor, generator: torch.Generator, strength: float = 0.4) -> Tensor:
    """Brightness then contrast, each factor uniform in [1 - s, 1 + s] per image; clipped to [0, 1]."""
    b = len(x)
    shape = (b, 1, 1, 1)
    low, span = 1.0 - strength, 2.0 * strength
    brightness = (low + span * torch.rand(b, generator=generator, device=generator.device)).to(x).view(shape)
    contrast = (low + span * torch.rand(b, generator=generator, device=generator.device)).to(x).view(shape)
    x = (x * brightness).clamp(0, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * contrast + mean).clamp(0, 1)


def view_op(name: str, feature_std: Tensor | None = None) -> ViewOp:
    """The named view as a function of (pixel-space batch, generator)."""
    if name == "rotate":
        return lambda x, g: rotate(x)
    if name == "grey":
        return lambda x, g: grey(x)
    if name == "jitter":
        return jitter
    if name.startswith("noise") and name[5:].isdigit():
        scale = int(name[5:]) / 10.0

        def noise(x: Tensor, g: torch.Generator) -> Tensor:
            eps = torch.randn(x.shape, generator=g, device=g.device).to(x)
            return x + scale * (feature_std if feature_std is not None else 1.0) * eps

        return noise
    raise ValueError(f"unknown view '{name}'; known: {', '.join(IMAGE_VIEWS + FEATURE_VIEWS)}")


def default_views(is_image: bool) -> tuple[str, ...]:
    return IMAGE_VIEWS if is_image else FEATURE_VIEWS


class ViewTransform:
    """A BatchTransform look-alike for Trainer.predict: model input of view ``op`` of each batch."""

    def __init__(self, base, op: ViewOp, generator: torch.Generator) -> None:
        self.base, self.op, self.generator = base, op, generator

    def __call__(self, x: Tensor, train: bool = False, generator: torch.Generator | None = None) -> Tensor:
        return self.base.normalize(self.op(self.base.pixels(x, False), self.generator))


def view_logits(trainer, model, x: Tensor, base, names: Sequence[str], seed: int,
                feature_std: Tensor | None = None, loss=None) -> Tensor:
    """Logits of ``model`` on each named view of ``x``: a [V, N, C] tensor (float32).

    View v draws its randomness from a generator seeded with seed + v on x's
    device, so two calls with the same inputs give the same views. With ``loss``, the logits are
    its ``prediction_logits`` (a learned link), as the run's own evaluation scores them.
    """
    out = []
    for v, name in enumerate(names):
        generator = torch.Generator(device=x.device).manual_seed(int(seed) + v)
        view = ViewTransform(base, view_op(name, feature_std), generator)
        out.append(trainer.predict(model, x, view, loss))
    return torch.stack(out)

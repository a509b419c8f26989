"""Class-balanced weights: inverse class frequency and the effective number of samples."""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench.reweight.base import ReweightContext, Reweighter, normalize_mean_one, register_reweight

SCHEMES = ("inverse", "effective")


@register_reweight("class_balanced")
class ClassBalanced(Reweighter):
    """Each sample weighs by its (noisy) label's class weight, normalized to mean 1 per batch.

    ``scheme: inverse``: w_c proportional to 1 / n_c.
    ``scheme: effective``: w_c proportional to (1 - beta) / (1 - beta^n_c), the inverse of
    the effective number of samples E_n = (1 - beta^n) / (1 - beta); beta = 0 gives
    uniform weights and beta -> 1 the inverse frequency.
    n_c counts the training labels the trainer sees (the noisy ones). A class with
    no training sample gets weight 0 (it never occurs in a batch). The weights of a
    batch, w_{y_i}, are rescaled to mean 1, so the batch loss is the w-weighted mean.

    Cui, Jia, Lin, Song, Belongie 2019, "Class-Balanced Loss Based on Effective
    Number of Samples", CVPR.
    """

    paper = "Cui et al. 2019"

    def __init__(self, scheme: str = "effective", beta: float = 0.999) -> None:
        if scheme not in SCHEMES:
            raise ValueError(f"unknown reweight.scheme '{scheme}'; known: {', '.join(SCHEMES)}")
        if not 0.0 <= float(beta) < 1.0:
            raise ValueError(f"reweight.beta must be in [0, 1), got {beta}")
        self.scheme = scheme
        self.beta = float(beta)
        self.class_weights: Tensor | None = None

    def setup(self, ctx: ReweightContext) -> None:
        counts = torch.bincount(ctx.split.y_train_noisy.long().cpu(), minlength=ctx.split.num_classes)
        self.class_weights = class_weights(counts, self.scheme, self.beta).to(ctx.device)

    def weights(self, losses: Tensor, target: Tensor, index: Tensor) -> Tensor:
        if self.class_weights is None:
            raise RuntimeError("class_balanced: setup() was not called")
        return normalize_mean_one(self.class_weights[target].to(losses.dtype))

    def summary(self) -> dict:
        if self.class_weights is None:
            return {}
        return {"class_weights": [round(float(w), 6) for w in self.class_weights.cpu()]}


def class_weights(counts: Tensor, scheme: str = "effective", beta: float = 0.999) -> Tensor:
    """Per-class weights from class counts, scaled to sum to the number of present classes.

    (The scale is Cui et al.'s; it does not matter here, each batch is rescaled to mean 1.)
    """
    n = counts.double()
    present = n > 0
    if scheme == "inverse":
        w = torch.where(present, 1.0 / n.clamp_min(1.0), torch.zeros_like(n))
    elif scheme == "effective":
        w = torch.where(present, (1.0 - beta) / (1.0 - beta ** n), torch.zeros_like(n))
    else:
        raise ValueError(f"unknown class-balanced scheme '{scheme}'; known: {', '.join(SCHEMES)}")
    total = w.sum()
    return (w * present.sum() / total).float() if total > 0 else w.float()

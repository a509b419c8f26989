"""Training on what a noisy-label detector found: drop the flagged samples, or down-weight by score."""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench.reweight.base import ReweightContext, Reweighter, normalize_mean_one, register_reweight


def _detection(ctx: ReweightContext, name: str):
    if ctx.detection is None:
        raise ValueError(
            f"reweight={name} trains on what a noisy-label detector found, but detect=none; "
            "add detect=recov, detect=fast_recov or detect=confident_learning"
        )
    return ctx.detection


def _check_warmup(warmup_epochs: int) -> int:
    if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
        raise ValueError(f"reweight.warmup_epochs must be an integer >= 0, got {warmup_epochs!r}")
    return warmup_epochs


@register_reweight("drop_flagged")
class DropFlagged(Reweighter):
    """Train without the samples the detector flagged (weight 0): each epoch visits a
    permutation of the unflagged training samples only, the pruning step of
    Northcutt et al. 2021 (Confident Learning) and of Chen et al. 2023 (ReCoV).

    During the first ``warmup_epochs`` every sample is visited (an optional warm-up on
    all labels). If the detector flags every sample, the run is refused. The summary
    records how many samples were kept.
    """

    paper = "Northcutt et al. 2021"

    def __init__(self, warmup_epochs: int = 0) -> None:
        self.warmup_epochs = _check_warmup(warmup_epochs)
        self.keep: Tensor | None = None
        self.epoch = 0

    def setup(self, ctx: ReweightContext) -> None:
        flags = _detection(ctx, "drop_flagged").flags.bool().cpu()
        keep = (~flags).nonzero().squeeze(1)
        if len(keep) == 0:
            raise ValueError(
                "reweight=drop_flagged: the detector flagged every training sample; nothing is left"
            )
        self.keep = keep

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        self.epoch = epoch

    def epoch_indices(self, n: int, generator: torch.Generator) -> Tensor | None:
        if self.keep is None or self.epoch < self.warmup_epochs:
            return None
        return self.keep[torch.randperm(len(self.keep), generator=generator)]

    def summary(self) -> dict:
        return {} if self.keep is None else {"kept": len(self.keep)}


@register_reweight("downweight_flagged")
class DownweightByScore(Reweighter):
    """Down-weight each sample by the detector's score: w_i proportional to (1 - s_i)^power,
    rescaled to mean 1 over the batch (a batch whose weights are all 0 falls back to
    uniform weights). s_i in [0, 1] is higher for labels judged more likely wrong.
    Plain mean during the first ``warmup_epochs``. The soft counterpart of the pruning in
    Northcutt et al. 2021 (Confident Learning): their per-sample label-quality score as s_i.
    """

    paper = "Northcutt et al. 2021"

    def __init__(self, power: float = 1.0, warmup_epochs: int = 0) -> None:
        if not power > 0:
            raise ValueError(f"reweight.power must be > 0, got {power}")
        self.power = float(power)
        self.warmup_epochs = _check_warmup(warmup_epochs)
        self.trust: Tensor | None = None
        self.epoch = 0

    def setup(self, ctx: ReweightContext) -> None:
        scores = _detection(ctx, "downweight_flagged").scores.float().clamp(0, 1)
        self.trust = (1.0 - scores).pow(self.power).to(ctx.device)

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        self.epoch = epoch

    def weights(self, losses: Tensor, target: Tensor, index: Tensor) -> Tensor | None:
        if self.trust is None or self.epoch < self.warmup_epochs:
            return None
        w = self.trust[index].to(losses.dtype)
        if not bool(w.sum() > 0):
            return None
        return normalize_mean_one(w)

    def summary(self) -> dict:
        return {} if self.trust is None else {"mean_trust": float(self.trust.mean())}

"""Reweighting from the adversarial-training literature: DONE's KL-regularised weights, SOVR's loss switch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench.losses.base import Loss
from lossbench.losses.functional import gather, target_mask
from lossbench.reweight.base import Reweighter, register_reweight


@register_reweight("done")
class DONE(Reweighter):
    """KL-regularised instance weights: w = argmax_{w in simplex} sum_i w_i l_i - r KL(w || uniform).

    The maximiser is w_i = exp(l_i / r) / sum_j exp(l_j / r); lossbench takes it over each batch
    and rescales it to mean 1: w_i = B softmax_i(l_i / r) on the detached per-sample objective
    (the adversarial loss under adversarial training). r -> infinity gives uniform weights,
    r -> 0 all weight on the worst sample.
    Sow, Lin, Wang, Liang 2024, "Doubly Robust Instance-Reweighted Adversarial Training", ICLR.
    Found (abstract, OpenReview): the weights come from "optimizing the KL-divergence regularized
    loss function", solved as a compositional bilevel problem (the CID algorithm, with a penalised
    log-barrier). Not found in any reachable copy: the paper's r, and whether its weights are kept
    over the whole training set (CID) rather than per batch; the batch form here is the closed-form
    solution of the inner problem, not the CID algorithm. r = 1 is lossbench's default.
    """

    paper = "Sow et al. 2024"

    def __init__(self, r: float = 1.0) -> None:
        if not float(r) > 0:
            raise ValueError(f"reweight.r must be positive, got {r}")
        self.r = float(r)

    def weights(self, losses: Tensor, target: Tensor, index: Tensor) -> Tensor:
        lo = losses.detach().float()
        return (lo / self.r).softmax(0) * lo.numel()


def logit_margin(logits: Tensor, target: Tensor) -> Tensor:
    """z_y - max_{k != y} z_k per sample (negative when misclassified)."""
    others = logits.masked_fill(target_mask(logits, target), float("-inf"))
    return gather(logits, target) - others.max(1).values


def one_vs_rest(logits: Tensor, target: Tensor) -> Tensor:
    """OVR loss: -log sigmoid(z_y) - sum_{k != y} log(1 - sigmoid(z_k))
    = softplus(-z_y) + sum_{k != y} softplus(z_k)."""
    z = logits.float() if logits.dtype != torch.float64 else logits
    signed = torch.where(target_mask(z, target), -z, z)
    return F.softplus(signed).sum(1)


@register_reweight("sovr")
class SOVR(Reweighter):
    """Switching one-vs-the-rest loss: the samples with the smallest logit margins get the OVR loss.

    In each batch, the ``fraction`` of samples with the smallest logit margins
    z_y - max_{k != y} z_k (computed on the logits the step trains on: adversarial ones under
    pgd_at) take ``one_vs_rest`` instead of the run's loss; the others keep the run's loss. The
    weights are uniform.
    Kanai, Yamaguchi, Yamada, Takahashi, Ohno, Ida 2023, "One-vs-the-Rest Loss to Focus on
    Important Samples in Adversarial Training", ICML (arXiv 2207.10283). Found (abstract): SOVR
    "switches from cross-entropy to one-vs-the-rest loss for important samples that have small
    logit margins". Not found in any reachable copy: how "small" is decided (a per-batch fraction,
    as here, or a threshold), the paper's value of it, and whether the OVR term is rescaled.
    fraction = 0.5 is lossbench's default.
    """

    paper = "Kanai et al. 2023"

    def __init__(self, fraction: float = 0.5) -> None:
        if not 0.0 <= float(fraction) <= 1.0:
            raise ValueError(f"reweight.fraction must be in [0, 1], got {fraction}")
        self.fraction = float(fraction)
        self.switched = 0.0

    def per_sample_loss(self, loss: Loss, logits: Tensor, target: Tensor, features: Tensor | None = None,
                        index: Tensor | None = None) -> Tensor:
        base = loss(logits, target, features, index)
        k = int(round(self.fraction * len(target)))
        if k == 0:
            return base
        margins = logit_margin(logits.detach(), target)
        switch = torch.zeros(len(target), dtype=torch.bool, device=logits.device)
        switch[margins.argsort()[:k]] = True
        self.switched = k / len(target)
        return torch.where(switch, one_vs_rest(logits, target).to(base.dtype), base)

    def summary(self) -> dict:
        return {"fraction": self.fraction}

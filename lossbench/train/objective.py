"""What one training step minimises: the loss contract served in one place.

The trainer never asks which loss, strategy or method it holds. For each batch
it calls an ``Objective``, which serves what the loss declares it needs
(``needs_features``, ``needs_index``; see ``lossbench.losses.base.Loss``),
lets the adversarial training method (``lossbench.adversarial.training``; ``none``
trains on the clean batch) choose the inputs and the per-sample objective, lets
the reweighting strategy correct and weigh the per-sample losses, and adds the
training-side regulariser (an L1 penalty on the weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lossbench.adversarial.training import AdvBatch, AdversarialMethod, NoAdversarial
from lossbench.data.transforms import BatchTransform
from lossbench.losses.base import Loss
from lossbench.reweight.base import Reweighter


@dataclass
class StepOutput:
    """One training step: ``loss`` is backpropagated; the rest feeds the epoch's statistics.

    ``per_sample`` [B] (detached) are the per-sample losses of the batch's
    samples, ``logits`` [B, C] (detached) the model's logits on them.
    """

    loss: Tensor
    per_sample: Tensor
    logits: Tensor


def l1_penalty(model: nn.Module) -> Tensor:
    """sum over every parameter theta of |theta| (ANL's regulariser, Ye et al. 2023)."""
    return torch.stack([p.abs().sum() for p in model.parameters()]).sum()


class Objective:
    """loss(batch) = mean_i w_i l_i + l1 * sum |theta|.

    ``l_i`` is the adversarial method's per-sample objective built on the run's
    loss l(z, y) as the reweighting strategy presents it (``per_sample_loss``: a
    loss correction, or the loss itself); with ``adversarial=none`` it is
    l(z_i, y_i) on the clean batch. ``w_i`` are the
    strategy's weights (mean 1; a plain mean when it gives none, bit for bit)
    and ``l1`` the coefficient of the L1 penalty on the model's parameters
    (``trainer.l1``; 0 adds nothing).
    """

    def __init__(self, loss_fn: Loss, reweight: Reweighter, transform: BatchTransform,
                 l1: float = 0.0, adversarial: AdversarialMethod | None = None) -> None:
        self.loss_fn = loss_fn
        self.adversarial = adversarial if adversarial is not None else NoAdversarial()
        self.reweight = reweight
        self.transform = transform
        self.l1 = float(l1)
        self.needs_features = bool(getattr(loss_fn, "needs_features", False))
        self.needs_index = bool(getattr(loss_fn, "needs_index", False))

    def forward(self, model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Logits (and the penultimate features when the loss needs them) for model input ``x``."""
        if self.needs_features:
            return model(x, return_features=True)
        return model(x), None

    def per_sample(self, logits: Tensor, target: Tensor, features: Tensor | None, index: Tensor) -> Tensor:
        """The per-sample losses [B] that the weights apply to."""
        return self.reweight.per_sample_loss(
            self.loss_fn, logits, target, features, index if self.needs_index else None
        )

    def weighted_mean(self, per_sample: Tensor, target: Tensor, index: Tensor) -> Tensor:
        """mean_i w_i l_i with the strategy's weights (a plain mean when it gives none)."""
        weights = self.reweight.weights(per_sample.detach(), target, index)
        return per_sample.mean() if weights is None else (per_sample * weights).mean()

    def reduce(self, logits: Tensor, target: Tensor, features: Tensor | None,
               index: Tensor) -> tuple[Tensor, Tensor]:
        """(mean_i w_i l(z_i, y_i), the per-sample losses [B]) for logits already computed on the
        clean batch (a packed step, lossbench.train.packed), without the L1 term."""
        per_sample = self.per_sample(logits, target, features, index)
        return self.weighted_mean(per_sample, target, index), per_sample

    def __call__(self, model: nn.Module, x_raw: Tensor, target: Tensor, index: Tensor,
                 generator: torch.Generator | None = None,
                 attack_generator: torch.Generator | None = None) -> StepOutput:
        """The step's loss for the training samples at positions ``index`` (raw inputs ``x_raw``);
        ``generator`` draws the augmentation, ``attack_generator`` the attack's random start."""
        batch = AdvBatch(
            model=model, x_raw=x_raw, target=target, transform=self.transform,
            forward=lambda x: self.forward(model, x),
            loss_of=lambda logits, features: self.per_sample(logits, target, features, index),
            augment_generator=generator, attack_generator=attack_generator,
        )
        per_sample, logits = self.adversarial.per_sample(batch)
        loss = self.weighted_mean(per_sample, target, index)
        if self.l1:
            loss = loss + self.l1 * l1_penalty(model)
        return StepOutput(loss=loss, per_sample=per_sample.detach(), logits=logits.detach())

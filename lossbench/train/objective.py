"""What one training step minimises: the loss contract served in one place.

The trainer never asks which loss, strategy or method it holds. For each batch
it calls an ``Objective``, which serves what the loss declares it needs
(``needs_features``, ``needs_index``, ``needs_head``, its ``level``; see
``lossbench.losses.base.Loss``), lets the adversarial training method
(``lossbench.adversarial.training``; ``none`` trains on the clean batch) choose
the inputs and the per-sample objective, lets the reweighting strategy correct
and weigh the per-sample losses, and adds the training-side regulariser (an L1
penalty on the weights). The epoch's batches (``Objective.epoch_batches``: the
loss's own sampler for set-level losses) and the optimizer's parameter groups
(``parameter_groups``: the model's, then a trainable loss's) are decided here
too, and ``check_training`` refuses, before training, a loss, a strategy and an
adversarial method that do not fit together.
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
    samples (for a set- or batch-level loss, each sample carries its set's or
    its batch's value), ``logits`` [B, C] (detached) the model's logits on them
    (None when the loss never formed them), ``pred`` [B] the predicted classes
    of the loss's predictive distribution.
    """

    loss: Tensor
    per_sample: Tensor
    logits: Tensor | None
    pred: Tensor


def _name(obj: object) -> str:
    return getattr(obj, "registry_name", type(obj).__name__)


def check_pairing(loss: Loss, reweight: Reweighter, adversarial: AdversarialMethod | None = None) -> None:
    """Refuse a strategy or an adversarial method that needs what the loss does not give: per-sample
    values (``needs_per_sample``), or logits (``needs_logits``)."""
    level = getattr(loss, "level", "sample")
    head = getattr(loss, "needs_head", False)
    for kind, part in (("reweight", reweight), ("adversarial", adversarial)):
        if part is None:
            continue
        if level != "sample" and getattr(part, "needs_per_sample", True):
            hint = "reweight=none" if kind == "reweight" else "adversarial=none"
            verb = "weighs or corrects" if kind == "reweight" else "attacks"
            raise ValueError(
                f"{kind}={_name(part)} {verb} per-sample losses, and loss "
                f"'{_name(loss)}' has none (it scores each {level} as a whole); use {hint}"
            )
        if head and getattr(part, "needs_logits", False):
            hint = ("reweight=none, class_balanced or loss_based" if kind == "reweight"
                    else "adversarial=none")
            raise ValueError(
                f"{kind}={_name(part)} reads the logits, which loss '{_name(loss)}' never forms (it is "
                f"computed from the features and the head); use {hint}"
            )


def check_training(loss: Loss, reweight: Reweighter, labels: Tensor, batch_size: int,
                   device: torch.device, adversarial: AdversarialMethod | None = None) -> None:
    """Everything about a loss that can be refused before training (one line each, ValueError)."""
    check_pairing(loss, reweight, adversarial)
    if hasattr(loss, "prepare"):
        loss.prepare(labels, batch_size, device)


def parameter_groups(model: nn.Module, loss: Loss) -> list[dict]:
    """The optimizer's parameter groups: the model's, then the loss's own (``Loss.parameter_groups``)."""
    return [{"params": list(model.parameters())}, *loss.parameter_groups()]


def clip_norm(trainer_clip: float | None, loss: Loss) -> float | None:
    """The largest mini-batch gradient norm the step allows: ``trainer.grad_clip`` and the loss's own
    ``grad_clip`` (a method defined with clipping), the smaller of those set; None: no clipping."""
    bounds = [float(c) for c in (trainer_clip, getattr(loss, "grad_clip", None)) if c is not None]
    return min(bounds) if bounds else None


def l1_penalty(model: nn.Module) -> Tensor:
    """sum over every parameter theta of |theta| (ANL's regulariser, Ye et al. 2023)."""
    return torch.stack([p.abs().sum() for p in model.parameters()]).sum()


class Objective:
    """loss(batch) = r mean_i w_i l_i + l1 * sum |theta|, r = 1 (``loss.reduction=mean``) or B (``sum``).

    ``l_i`` is the adversarial method's per-sample objective built on the run's
    loss l(z, y) as the reweighting strategy presents it (``per_sample_loss``: a
    loss correction, or the loss itself); with ``adversarial=none`` it is
    l(z_i, y_i) on the clean batch. ``w_i`` are the
    strategy's weights (mean 1; a plain mean when it gives none, bit for bit)
    and ``l1`` the coefficient of the L1 penalty on the model's parameters
    (``trainer.l1``; 0 adds nothing). With ``loss.reduction=sum`` the loss
    term is the sum over the batch's B samples (B times the mean; each sample
    of a set- or batch-level loss carries its unit's value), as code that sums
    its loss; the penalty is not scaled.
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
        self.needs_head = bool(getattr(loss_fn, "needs_head", False))
        self.link = getattr(loss_fn, "prediction_logits", None)  # None: a bare nn.Module loss
        self.summed = getattr(loss_fn, "reduction", "mean") == "sum"
        check_pairing(loss_fn, reweight, self.adversarial)

    def scale(self, batch: int) -> int:
        """The factor from the mean over a batch of ``batch`` samples to the step's loss term."""
        return batch if self.summed else 1

    def epoch_batches(self, labels: Tensor, batch_size: int, generator: torch.Generator,
                      device: torch.device) -> list[Tensor]:
        """The training positions of each batch of one epoch (on ``device``).

        A loss with a sampler of its own (set-level) builds them from the training
        labels; otherwise the strategy's resampled indices or a permutation of all
        positions, cut into ``batch_size`` slices (a last batch of one is dropped:
        it breaks batch norm).
        """
        sampler = getattr(self.loss_fn, "epoch_batches", None)
        batches = sampler(labels, batch_size, generator) if sampler is not None else None
        if batches is not None:
            return [b.to(device, non_blocking=True) for b in batches]
        order = self.reweight.epoch_indices(len(labels), generator)
        if order is None:
            order = torch.randperm(len(labels), generator=generator)
        order = order.to(device, non_blocking=True)
        if len(order) % batch_size == 1 and len(order) > 1:
            order = order[:-1]
        return list(order.split(batch_size))

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
        """mean_i w_i l_i with the strategy's weights (a plain mean when it gives none), times B when
        ``loss.reduction=sum``."""
        weights = self.reweight.weights(per_sample.detach(), target, index)
        mean = per_sample.mean() if weights is None else (per_sample * weights).mean()
        return mean * self.scale(len(target)) if self.summed else mean

    def reduce(self, logits: Tensor, target: Tensor, features: Tensor | None,
               index: Tensor) -> tuple[Tensor, Tensor]:
        """(mean_i w_i l(z_i, y_i) (times B for ``loss.reduction=sum``), the per-sample losses [B]) for
        logits already computed on the clean batch (a packed step, lossbench.train.packed), without
        the L1 term."""
        per_sample = self.per_sample(logits, target, features, index)
        return self.weighted_mean(per_sample, target, index), per_sample

    def head_values(self, model: nn.Module, x: Tensor, target: Tensor,
                    index: Tensor) -> tuple[Tensor, Tensor]:
        """(per-sample losses, predicted classes) of a ``needs_head`` loss from the features and the
        model's linear head: the [B, C] logits are never formed."""
        head, body = getattr(model, "head", None), getattr(model, "body", None)
        if not isinstance(head, nn.Linear) or body is None:
            raise ValueError(f"loss '{_name(self.loss_fn)}' needs a model with a body and a linear head "
                             f"(lossbench's Classifier), got {type(model).__name__}")
        return self.loss_fn.head_loss(body(x), head, target, index if self.needs_index else None)

    def __call__(self, model: nn.Module, x_raw: Tensor, target: Tensor, index: Tensor,
                 generator: torch.Generator | None = None,
                 attack_generator: torch.Generator | None = None) -> StepOutput:
        """The step's loss for the training samples at positions ``index`` (raw inputs ``x_raw``);
        ``generator`` draws the augmentation, ``attack_generator`` the attack's random start.

        The loss's values are per sample, per set or one per batch (its ``level``);
        the step minimises their (weighted) mean, and each sample's statistic is
        the value of the unit it belongs to.
        """
        logits: Tensor | None = None
        if self.needs_head:  # adversarial=none only (check_pairing)
            x = self.transform(x_raw, train=True, generator=generator)
            values, pred = self.head_values(model, x, target, index)
        else:
            batch = AdvBatch(
                model=model, x_raw=x_raw, target=target, transform=self.transform,
                forward=lambda x: self.forward(model, x),
                loss_of=lambda logits, features: self.per_sample(logits, target, features, index),
                augment_generator=generator, attack_generator=attack_generator, link=self.link,
            )
            values, logits = self.adversarial.per_sample(batch)
            logits = logits.detach()
            with torch.no_grad():
                pred = (logits if self.link is None else self.link(logits)).argmax(1)
        per_sample = values.detach().reshape(-1)
        if per_sample.numel() != len(target):
            per_sample = per_sample.repeat_interleave(len(target) // per_sample.numel())
        weights = self.reweight.weights(per_sample, target, index)
        loss = values.mean() if weights is None else (values * weights).mean()
        if self.summed:
            loss = loss * self.scale(len(target))
        if self.l1:
            loss = loss + self.l1 * l1_penalty(model)
        return StepOutput(loss=loss, per_sample=per_sample, logits=logits, pred=pred.detach())

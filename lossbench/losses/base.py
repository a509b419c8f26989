"""The loss contract: per-sample values from (logits, target), no reduction."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from lossbench.registry import Registry

LOSSES: Registry[type[Loss]] = Registry("loss")
register_loss = LOSSES.register

FAMILIES = ("comp-sum", "robust", "calibration")


class Loss(nn.Module):
    """Base class: checks inputs once, then calls ``compute`` for the maths.

    Subclasses set ``family`` (one of FAMILIES), ``paper`` (short citation) and
    implement ``compute(logits, target) -> Tensor[B]`` in float32.

    ``probabilistic`` is True when the loss depends on the logits only through
    softmax(logits); transition-matrix corrections need that. ``needs_features``
    asks the trainer to pass the model's penultimate features [B, D] as
    ``features`` (then ``compute(logits, target, features)``). Both are class
    attributes; an instance may refine them where a hyperparameter decides
    (LogitClip takes ``needs_features`` from its inner loss; LDR losses are
    probabilistic only with raw scores), so read them from the instance. The
    class value is the conservative one. A loss that needs training progress
    overrides ``on_epoch_start``. Stable building blocks are in ``functional``.
    """

    family: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    probabilistic: ClassVar[bool] = True
    needs_features: ClassVar[bool] = False

    def forward(self, logits: Tensor, target: Tensor, features: Tensor | None = None) -> Tensor:
        if logits.ndim != 2:
            raise ValueError(f"logits must be [batch, classes], got shape {tuple(logits.shape)}")
        if target.ndim != 1 or target.shape[0] != logits.shape[0]:
            raise ValueError(
                f"target must be [batch] matching logits {tuple(logits.shape)}, "
                f"got shape {tuple(target.shape)}"
            )
        if target.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"target must hold integer class indices, got {target.dtype}")
        logits = logits.float()
        if self.needs_features:
            if features is None:
                raise ValueError(f"{type(self).__name__} needs the model's features")
            return self.compute(logits, target.long(), features.float())
        return self.compute(logits, target.long())

    def compute(self, logits: Tensor, target: Tensor, *args: Tensor) -> Tensor:
        raise NotImplementedError

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Hook for losses that depend on training progress (0-based epoch)."""

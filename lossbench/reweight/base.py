"""The reweighting contract: per-sample losses in, per-sample weights (mean 1) out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from lossbench.core.registry import Registry

if TYPE_CHECKING:
    from lossbench.data.split import Split
    from lossbench.losses.base import Loss

REWEIGHTS: Registry = Registry("reweighting strategy")
register_reweight = REWEIGHTS.register


@dataclass
class ReweightContext:
    """What a strategy may look at before training starts.

    ``split`` is on the training device with its noisy labels; ``true_T`` is the
    noise model's expected transition matrix; ``make_model`` builds a fresh
    model of the run's architecture (for warm-up estimators); ``loss`` is the
    run's loss; ``info`` collects what the strategy wants in summary.json;
    ``detection`` is what the run's noisy-label detector found
    (``lossbench.detect.Detection``; None with ``detect=none``).
    """

    split: Split
    loss: Loss
    true_T: np.ndarray | None
    device: torch.device
    seed: int
    make_model: Any = None
    train_warmup: Any = None
    info: dict | None = None
    detection: Any = None


class Reweighter:
    """Base class; the ``none`` strategy is this class unchanged.

    Hooks, each optional:
    - ``setup(ctx)`` once before training;
    - ``on_epoch_start(epoch, num_epochs)``;
    - ``epoch_indices(n, generator)`` -> training positions to visit this epoch
      (resampling methods); None means a plain permutation of all;
    - ``per_sample_loss(loss, logits, target, features, index)`` -> Tensor[B] (loss
      corrections); the default calls the loss;
    - ``weights(losses, target, index)`` -> Tensor[B] with mean 1, or None for
      uniform weights (the trainer then takes a plain mean, bit for bit).

    What a strategy needs from the loss it declares, as losses do:
    ``needs_per_sample`` (it weighs or corrects per-sample losses, so a set- or
    batch-level loss is refused before training) and ``needs_logits`` (it reads
    the logits, which a loss computed from the head alone never forms).
    """

    name: ClassVar[str] = "none"
    paper: ClassVar[str] = ""
    needs_per_sample: ClassVar[bool] = True
    needs_logits: ClassVar[bool] = False

    def setup(self, ctx: ReweightContext) -> None:
        """Prepare before the first epoch."""

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Hook for strategies that depend on training progress."""

    def epoch_indices(self, n: int, generator: torch.Generator) -> Tensor | None:
        return None

    def per_sample_loss(
        self, loss: Loss, logits: Tensor, target: Tensor, features: Tensor | None = None,
        index: Tensor | None = None,
    ) -> Tensor:
        return loss(logits, target, features, index)

    def weights(self, losses: Tensor, target: Tensor, index: Tensor) -> Tensor | None:
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` saved."""

    def summary(self) -> dict:
        """Figures for summary.json (e.g. the estimated T's error)."""
        return {}


@register_reweight("none")
class NoReweighting(Reweighter):
    """Every sample weighs 1: the plain mean of the per-sample losses."""

    needs_per_sample = False


def normalize_mean_one(w: Tensor) -> Tensor:
    """Scale non-negative weights so that their batch mean is 1."""
    return w * (w.numel() / w.sum().clamp_min(torch.finfo(w.dtype).tiny))

"""The loss contract: per-sample values from (logits, target), no reduction."""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from lossbench.core.choices import REDUCTIONS
from lossbench.core.registry import Registry

LOSSES: Registry[type[Loss]] = Registry("loss")
register_loss = LOSSES.register

FAMILIES = ("comp-sum", "robust", "calibration", "metric", "learned")
# What one value of a loss's forward scores: a sample ([B]), a set of samples ([S]) or the whole batch ([]).
LEVELS = ("sample", "set", "batch")
# Constructor arguments that come from the run (``build_loss``), not from conf/loss.
RUNTIME_ARGS = ("num_classes", "num_train")


# How the training step reduces a batch's values (``loss.reduction``, every loss; lossbench.train.objective).


def check_reduction(reduction: str) -> str:
    """``reduction`` if it is one of REDUCTIONS, else ValueError in one line."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown loss.reduction '{reduction}'; known: {', '.join(REDUCTIONS)} "
                         f"(sum: batch size times the mean, as code that sums the loss over the batch)")
    return str(reduction)


def hyperparameter_names(cls: type) -> list[str]:
    """The constructor arguments of a loss class that conf/loss sets (runtime ones left out)."""
    params = inspect.signature(cls.__init__).parameters
    return [k for k, p in params.items()
            if k != "self" and k not in RUNTIME_ARGS and p.kind is p.POSITIONAL_OR_KEYWORD]


class Loss(nn.Module):
    """Base class: checks inputs once, then calls ``compute`` for the maths.

    Subclasses set ``family`` (one of FAMILIES), ``paper`` (short citation) and
    implement ``compute(logits, target) -> Tensor[B]`` in float32.

    What a loss needs beyond (logits, target) it declares as a class attribute,
    and the trainer serves it in one place (``lossbench.train.objective``):

    - ``probabilistic``: True when the loss depends on the logits only through
      softmax(logits); transition-matrix corrections need that.
    - ``needs_features``: the model's penultimate features [B, D] are passed
      (then ``compute(logits, target, features)``).
    - ``needs_index``: the batch's positions in the training set [B] are passed
      as ``compute(..., index=index)``, for losses that keep per-sample state
      (a buffer of ``num_train`` values, saved with the loss's state_dict, so
      checkpoints carry it). The constructor may take ``num_train`` (and
      ``num_classes``); ``build_loss`` fills them in. Such state is written in
      training mode only: in eval mode (``loss.eval()``) the loss reads it and
      is a pure function of its inputs.

    ``hyperparameters()`` returns the constructor's conf/loss arguments as the
    instance uses them (summary.json's ``loss_params``); subclasses store each
    under its argument's name.

    Three further shapes (issue 20), each served in one place (the training step
    ``Objective``; the sampler and the optimizer's parameter groups beside it):

    - ``level``: ``"sample"`` (forward returns [B]), ``"set"`` (the loss scores
      sets of samples and returns [S]; its ``epoch_batches`` builds the epoch's
      batches out of whole sets from the training labels) or ``"batch"`` (a
      non-decomposable loss of the whole batch, returned as a 0-dim tensor).
      Only sample-level values can be reweighted: strategies that need them
      refuse the other levels before training.
    - ``trainable``: the loss has parameters of its own, trained with the model
      in the optimizer groups ``parameter_groups`` gives (its own ``lr`` and
      ``weight_decay`` when the constructor sets them), saved and restored with
      the loss's state_dict. ``prediction_logits`` maps the model's logits to
      those of the loss's predictive distribution (a learned link), which
      evaluation then scores.
    - ``grad_clip``: a method defined with gradient clipping (Menon et al. 2020's
      "CE + clipping", ``ce_clip``) names the largest norm of the mini-batch
      gradient; the training step clips to it (``trainer.grad_clip``, when also
      set, clips too: the smaller bound holds; ``objective.clip_norm``).
    - ``needs_head``: the loss can be computed from the penultimate features and
      the model's linear head without materialising the logits
      (``head_loss(features, head, target, index) -> (per-sample values,
      predicted classes)``); the training step then never forms [B, C] logits.

    ``reduction`` (``loss.reduction`` in every loss's config: ``mean``, the
    default, or ``sum``) is how the step reduces the batch: the sum is the
    batch size times the mean, for code that sums its loss over the batch
    (Mukhoti et al. 2020). It is served in the training step, never in
    ``compute``, so every loss has it.

    ``prepare(labels, batch_size, device)`` checks, before training, what a loss
    can know about the run (enough samples per class for sets, a device for a
    kernel) and raises ValueError in one line.

    Instances may refine these where a hyperparameter decides (LogitClip takes
    ``needs_features`` from its inner loss; LDR losses are probabilistic only
    with raw scores), so read them from the instance; the class value is the
    conservative one. A loss that needs training progress overrides
    ``on_epoch_start``. Stable building blocks are in ``functional``.

    Inputs are computed in float32 (half types are upcast); float64 logits stay
    float64, so formulas can be checked at double precision.
    """

    family: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    probabilistic: ClassVar[bool] = True
    needs_features: ClassVar[bool] = False
    needs_index: ClassVar[bool] = False
    level: ClassVar[str] = "sample"
    trainable: ClassVar[bool] = False
    needs_head: ClassVar[bool] = False
    grad_clip: ClassVar[float | None] = None

    def __init__(self) -> None:
        super().__init__()
        self.reduction = "mean"  # lossbench.lifecycle.builders.build_loss sets it from loss.reduction

    def forward(self, logits: Tensor, target: Tensor, features: Tensor | None = None,
                index: Tensor | None = None) -> Tensor:
        if logits.ndim != 2:
            raise ValueError(f"logits must be [batch, classes], got shape {tuple(logits.shape)}")
        if target.ndim != 1 or target.shape[0] != logits.shape[0]:
            raise ValueError(
                f"target must be [batch] matching logits {tuple(logits.shape)}, "
                f"got shape {tuple(target.shape)}"
            )
        if target.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"target must hold integer class indices, got {target.dtype}")
        dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
        logits = logits.to(dtype)
        args: tuple[Tensor, ...] = ()
        kwargs: dict[str, Tensor] = {}
        if self.needs_features:
            if features is None:
                raise ValueError(f"{type(self).__name__} needs the model's features")
            args = (features.to(dtype),)
        if self.needs_index:
            if index is None:
                raise ValueError(f"{type(self).__name__} needs the batch's training-set indices")
            kwargs["index"] = index
        return self.compute(logits, target.long(), *args, **kwargs)

    def compute(self, logits: Tensor, target: Tensor, *args: Tensor, **kwargs: Tensor) -> Tensor:
        raise NotImplementedError

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Hook for losses that depend on training progress (0-based epoch)."""

    def prepare(self, labels: Tensor, batch_size: int, device: torch.device) -> None:
        """Refuse (ValueError, one line) a run this loss cannot train: its training labels, its
        batch size, its device. Called before training; the default accepts everything."""

    def epoch_batches(self, labels: Tensor, batch_size: int,
                      generator: torch.Generator) -> list[Tensor] | None:
        """The training positions of each batch of one epoch, for losses whose batches have a
        structure (set-level losses); None lets the trainer draw its permutation."""
        return None

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Optimizer parameter groups of a trainable loss: its parameters, with ``lr`` and
        ``weight_decay`` when the instance sets them (None: the optimizer's own)."""
        if not self.trainable:
            return []
        group: dict[str, Any] = {"params": [p for p in self.parameters() if p.requires_grad]}
        for key in ("lr", "weight_decay"):
            if getattr(self, key, None) is not None:
                group[key] = float(getattr(self, key))
        return [group] if group["params"] else []

    def prediction_logits(self, logits: Tensor) -> Tensor:
        """Logits whose softmax is the loss's prediction: the model's own unless the loss learns a link."""
        return logits

    def hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters this instance uses, by constructor name (named choices resolved,
        e.g. RCE's ``A: code`` as log(1e-4)); ``type(self)(**hyperparameters())`` rebuilds it."""
        return {name: getattr(self, name) for name in hyperparameter_names(type(self))}

"""The loss contract: per-sample values from (logits, target), no reduction."""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from lossbench.registry import Registry

LOSSES: Registry[type[Loss]] = Registry("loss")
register_loss = LOSSES.register

FAMILIES = ("comp-sum", "robust", "calibration")
# Constructor arguments that come from the run (``build_loss``), not from conf/loss.
RUNTIME_ARGS = ("num_classes", "num_train")


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

    def hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters this instance uses, by constructor name (named choices resolved,
        e.g. RCE's ``A: code`` as log(1e-4)); ``type(self)(**hyperparameters())`` rebuilds it."""
        return {name: getattr(self, name) for name in hyperparameter_names(type(self))}

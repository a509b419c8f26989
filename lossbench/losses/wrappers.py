"""Wrappers: losses built around another registered loss."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from lossbench.losses.base import LOSSES, Loss, register_loss

CLIP_CONVENTIONS = ("paper", "code")


@register_loss("logit_clip")
class LogitClip(Loss):
    """LogitClip: the inner loss on logits whose p-norm is clamped to at most delta.

        paper:  clip(z) = z                       if ||z||_p <= delta
                          delta * z / ||z||_p     otherwise
        code:   clip(z) = z / (delta ||z||_p)     if ||z||_p > delta (norm 1/delta)

    The paper (its tau is our ``delta``) bounds the norm by delta; the official
    code rescales an over-long logit vector to norm 1/delta instead, which
    coincides only at delta = 1. ``convention`` picks one; the default is the
    paper's. With the default delta = 1 and p = 2 the two agree. Clipping
    bounds CE and makes it noise-tolerant; any registered loss can be wrapped:
    ``loss=logit_clip loss.inner=gce loss.inner_kwargs={q: 0.7}``. The paper
    tunes delta per loss and dataset.

    Hongxin Wei, Huiping Zhuang, Renchunzi Xie, Lei Feng, Gang Niu, Bo An,
    Yixuan Li 2023, "Mitigating Memorization of Noisy Labels by Clipping the
    Model Prediction", ICML.
    """

    family = "robust"
    paper = "Wei et al. 2023"
    probabilistic = False

    def __init__(
        self,
        inner: str = "ce",
        delta: float = 1.0,
        p: float = 2.0,
        convention: str = "paper",
        inner_kwargs: Mapping[str, Any] | None = None,
        num_classes: int | None = None,
        num_train: int | None = None,
    ) -> None:
        super().__init__()
        if inner == "logit_clip":
            raise ValueError("logit_clip cannot wrap itself; pick another inner loss")
        if not delta > 0:
            raise ValueError(f"logit_clip needs delta > 0, got {delta}")
        if not p >= 1:
            raise ValueError(f"logit_clip needs a norm order p >= 1, got {p}")
        if convention not in CLIP_CONVENTIONS:
            raise ValueError(
                f"unknown logit_clip convention '{convention}'; known: {', '.join(CLIP_CONVENTIONS)}"
            )
        if isinstance(inner_kwargs, DictConfig):
            inner_kwargs = OmegaConf.to_container(inner_kwargs, resolve=True)
        if inner not in LOSSES:
            raise ValueError(f"unknown logit_clip inner loss '{inner}'; known: {', '.join(LOSSES.names())}")
        cls = LOSSES.get(inner)
        accepted = inspect.signature(cls.__init__).parameters
        runtime = {k: v for k, v in (("num_classes", num_classes), ("num_train", num_train))
                   if k in accepted and v is not None}
        try:
            self.inner = cls(**dict(inner_kwargs or {}), **runtime)
        except TypeError as exc:
            raise ValueError(f"logit_clip: inner_kwargs do not fit loss '{inner}': {exc}") from exc
        self.inner_name, self.delta, self.p, self.convention = inner, float(delta), float(p), convention
        self.needs_features = self.inner.needs_features
        self.needs_index = self.inner.needs_index

    def clip(self, logits: Tensor) -> Tensor:
        norm = torch.linalg.vector_norm(logits, ord=self.p, dim=1, keepdim=True)
        if self.convention == "paper":
            return logits * (self.delta / norm.clamp_min(self.delta))
        long = norm > self.delta
        return logits * torch.where(long, 1.0 / (self.delta * norm.clamp_min(self.delta)), 1.0)

    def compute(self, logits: Tensor, target: Tensor, features: Tensor | None = None,
                index: Tensor | None = None) -> Tensor:
        extra = (features,) if self.inner.needs_features else ()
        kwargs = {"index": index} if self.inner.needs_index else {}
        return self.inner.compute(self.clip(logits), target, *extra, **kwargs)

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        self.inner.on_epoch_start(epoch, num_epochs)

    def hyperparameters(self) -> dict[str, Any]:
        return {"inner": self.inner_name, "delta": self.delta, "p": self.p, "convention": self.convention,
                "inner_kwargs": self.inner.hyperparameters()}

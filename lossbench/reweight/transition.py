"""Noise transition matrices for the reweighting strategies: the oracle, the anchor-point estimator."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from lossbench.reweight.base import ReweightContext, Reweighter

if TYPE_CHECKING:
    from lossbench.data.split import Split
    from lossbench.losses.base import Loss

log = logging.getLogger("lossbench")

# Where a strategy's T comes from: the noise model's expected matrix (an oracle
# upper bound) or the anchor-point estimator of Patrini et al. 2017.
TRANSITION_SOURCES = ("true", "anchor")


def parse_source(value: object) -> str:
    """``reweight.transition`` as one of TRANSITION_SOURCES.

    YAML and Hydra read a bare ``true`` as a boolean, so True and "true" both
    name the oracle.
    """
    if value is True or (isinstance(value, str) and value.lower() == "true"):
        return "true"
    if isinstance(value, str) and value.lower() == "anchor":
        return "anchor"
    raise ValueError(
        f"unknown reweight.transition '{value}'; known: {', '.join(TRANSITION_SOURCES)} "
        "(true = the noise model's expected T, anchor = estimated from a warm-up model)"
    )


def anchor_transition(probs: Tensor, quantile: float = 0.97) -> Tensor:
    """The anchor-point estimate of T from a model's noisy-label posteriors.

    ``probs[n, j]`` = p(noisy = j | x_n) for every training input. For each
    class i the anchor is the input that looks most surely of class i,
    x_i = argmax_x p(noisy = i | x), and row i of T is the posterior there:
    T[i, j] = p(noisy = j | x_i). At an anchor point p(clean = i | x) = 1, so
    p(noisy | x) = T[i, :] exactly (Patrini et al. 2017, "Making Deep Neural
    Networks Robust to Label Noise: a Loss Correction Approach", CVPR, eq. 11).

    With ``quantile`` < 1 the anchor is the input with the largest p(noisy = i | x)
    strictly below that column's ``quantile``-quantile (taken at an observed
    value, numpy's "higher"), which skips overconfident outliers; this is the
    ``filter_outlier`` option of the paper's code, used there with 0.97.
    ``quantile`` = 1 is the plain argmax.
    """
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(f"probs must be [inputs, classes >= 2], got shape {tuple(probs.shape)}")
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"anchor_quantile must be in (0, 1], got {quantile}")
    probs = probs.double()
    n, c = probs.shape
    rows = []
    for i in range(c):
        col = probs[:, i]
        best = int(col.argmax())
        if quantile < 1.0:
            ordered = col.sort().values
            threshold = ordered[min(n - 1, int(np.ceil(quantile * (n - 1))))]
            below = col < threshold
            if below.any():
                best = int(torch.where(below, col, torch.full_like(col, -1.0)).argmax())
        rows.append(probs[best])
    return torch.stack(rows)


def transition_mae(estimate: np.ndarray | Tensor, true: np.ndarray | Tensor) -> float:
    """Mean absolute error over all C x C entries."""
    est = torch.as_tensor(np.asarray(estimate, dtype=np.float64))
    ref = torch.as_tensor(np.asarray(true, dtype=np.float64))
    if est.shape != ref.shape:
        raise ValueError(f"transition matrices differ in shape: {tuple(est.shape)} vs {tuple(ref.shape)}")
    return float((est - ref).abs().mean())


@torch.no_grad()
def predict_probs(model: nn.Module, split: Split, batch_size: int = 2048) -> Tensor:
    """Softmax outputs of ``model`` (eval mode, float32) on every training input of ``split``."""
    from lossbench.data.transforms import BatchTransform

    transform = BatchTransform(split)
    was_training = model.training
    model.eval()
    x = split.x_train
    out = [model(transform(x[i : i + batch_size], train=False)).float().softmax(1)
           for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out)


def importance_weights(logits: Tensor, target: Tensor, T: Tensor) -> Tensor:
    """beta = p(clean = y~ | x) / p(noisy = y~ | x), with p(noisy | x) = T^T p(clean | x).

    p(clean | x) is the model's softmax, taken as the clean posterior (Liu and
    Tao 2016; the same ratio drives RENT). ``T[i, j]`` = P(noisy = j | clean = i).
    No gradient flows through the weights.
    """
    with torch.autocast(device_type=logits.device.type, enabled=False):
        p = logits.detach().float().softmax(1)
        p_noisy = p @ T.float()
        num = p.gather(1, target[:, None]).squeeze(1)
        den = p_noisy.gather(1, target[:, None]).squeeze(1)
    return num / den.clamp_min(1e-12)


class TransitionReweighter(Reweighter):
    """Shared plumbing of the transition-matrix strategies (importance, forward, backward, rent).

    ``transition``: ``true`` takes the noise model's expected T (an oracle; for
    instance-dependent and human noise it is the class-level average T the
    noise model reports, which the methods then treat as class-conditional);
    ``anchor`` trains a fresh model of the run's architecture with CE on the
    noisy labels for ``warmup_epochs`` and applies ``anchor_transition`` with
    ``anchor_quantile`` to its predictions on the training set. The warm-up runs
    on forked RNG streams, so the main run starts from the same random state
    whichever source is chosen. summary() reports the matrix used, its source
    and its mean absolute error against the true one.
    """

    needs_logits = True

    def __init__(
        self, transition: bool | str = "true", warmup_epochs: int = 10, anchor_quantile: float = 0.97
    ) -> None:
        self.source = parse_source(transition)
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 1:
            raise ValueError(f"reweight.warmup_epochs must be a positive integer, got {warmup_epochs!r}")
        if not 0.0 < float(anchor_quantile) <= 1.0:
            raise ValueError(f"reweight.anchor_quantile must be in (0, 1], got {anchor_quantile}")
        self.warmup_epochs = warmup_epochs
        self.anchor_quantile = float(anchor_quantile)
        self.T: Tensor | None = None
        self.T64: Tensor | None = None
        self.mae: float | None = None

    def check_loss(self, loss: Loss) -> None:
        """Refuse a loss this strategy cannot use (before any warm-up is spent)."""

    def prepare(self, T: Tensor, device: torch.device) -> None:
        """Derive what the strategy needs from T (float64, on CPU); refuse an unusable T."""

    def _install(self, T: Tensor, device: torch.device) -> None:
        T = T.detach().double().cpu()
        self.prepare(T, device)
        self.T64 = T
        self.T = T.to(device=device, dtype=torch.float32)

    def setup(self, ctx: ReweightContext) -> None:
        self.check_loss(ctx.loss)
        c = ctx.split.num_classes
        true_T = None if ctx.true_T is None else np.asarray(ctx.true_T, dtype=np.float64)
        if true_T is not None and true_T.shape != (c, c):
            raise ValueError(
                f"the noise model's transition matrix has shape {true_T.shape}, expected ({c}, {c})"
            )
        if self.source == "true":
            if true_T is None:
                raise ValueError(
                    f"reweight={self.registry_name} transition=true needs the noise model's "
                    "transition matrix, and this noise model has none; use reweight.transition=anchor"
                )
            T = torch.as_tensor(true_T)
        else:
            T = self._estimate(ctx)
        self.mae = None if true_T is None else transition_mae(T.numpy(), true_T)
        self._install(T, ctx.device)
        if self.source == "anchor":
            log.info("anchor-point T after %d warm-up epochs: mean absolute error %s",
                     self.warmup_epochs, "n/a" if self.mae is None else f"{self.mae:.4f}")

    def _estimate(self, ctx: ReweightContext) -> Tensor:
        if ctx.make_model is None or ctx.train_warmup is None:
            raise ValueError(
                "transition=anchor needs a warm-up model (make_model and train_warmup in the context)"
            )
        devices = [ctx.device] if ctx.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            model = ctx.train_warmup(ctx.make_model(), self.warmup_epochs)
            probs = predict_probs(model, ctx.split)
        return anchor_transition(probs.cpu(), self.anchor_quantile)

    def state_dict(self) -> dict:
        return {} if self.T64 is None else {"T": self.T64.clone()}

    def load_state_dict(self, state: dict) -> None:
        if "T" in state and self.T is not None:
            self._install(state["T"], self.T.device)

    def summary(self) -> dict:
        if self.T is None:
            return {}
        return {
            "transition_source": self.source,
            "transition_mae": self.mae,
            "transition": [[round(float(v), 6) for v in row] for row in self.T64],
        }

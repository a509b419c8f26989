"""Cross-validation machinery shared by the detectors: folds, learners, out-of-fold probabilities."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lossbench.detect.base import DetectContext

LEARNERS = ("logistic", "model")
REPRESENTATIONS = ("inputs", "features")
# Largest models x samples x classes block of logits evaluated at once by the batched logistic fit.
_BLOCK = 2**23


def kfold(n: int, k: int, generator: torch.Generator) -> Tensor:
    """fold_of [n]: a random partition of range(n) into k folds of sizes differing by at most 1."""
    fold_of = torch.empty(n, dtype=torch.long)
    fold_of[torch.randperm(n, generator=generator)] = torch.arange(n) % k
    return fold_of


def fit_logistic(
    x: Tensor,
    y: Tensor,
    train_mask: Tensor,
    num_classes: int,
    C: float = 1.0,
    max_iter: int = 100,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """M multinomial logistic regressions at once, model m fitted on the rows where train_mask[m].

    Each minimises C sum_i CE(x_i W_m + b_m, y_i) + ||W_m||^2 / 2 over its rows (scikit-learn's
    LogisticRegression objective with the default C = 1, the learner of the ReCoV code), solved
    by L-BFGS (strong Wolfe line search) on the sum of the M separable objectives, each
    divided by C n_m (which keeps the minimisers). The M models' logits are one matrix
    product x [N, D] @ W [D, M K]. Returns (W [M, D, K], b [M, K]).
    """
    x = x.to(dtype).flatten(1)
    masks = train_mask.to(x.device, dtype)
    m, (n, d), k = masks.shape[0], x.shape, num_classes
    target = y.long().to(x.device)
    counts = masks.sum(1).clamp_min(1.0)
    scale = 1.0 / counts  # [M]
    W = torch.zeros(d, m * k, dtype=dtype, device=x.device, requires_grad=True)
    b = torch.zeros(m * k, dtype=dtype, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS(
        [W, b],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-7,
        tolerance_change=1e-10,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    rows = max(1, _BLOCK // max(1, m * k))

    def closure() -> Tensor:
        opt.zero_grad()
        total = x.new_zeros(())
        for lo in range(0, n, rows):
            logits = (x[lo : lo + rows] @ W + b).view(-1, m, k)  # [n_b, M, K]
            nll = -logits.log_softmax(-1).gather(2, target[lo : lo + rows, None, None].expand(-1, m, 1))
            part = (nll.squeeze(2) * masks[:, lo : lo + rows].T * scale).sum()
            part.backward()
            total = total + part.detach()
        penalty = 0.5 * (W.view(d, m, k).pow(2).sum((0, 2)) * scale).sum() / C
        penalty.backward()
        return total + penalty.detach()

    opt.step(closure)
    return W.detach().view(d, m, k).permute(1, 0, 2).contiguous(), b.detach().view(m, k)


def logistic_probs(x: Tensor, W: Tensor, b: Tensor) -> Tensor:
    """softmax(x W_m + b_m) for every model m: [M, N, K]."""
    x = x.to(W.dtype).flatten(1)
    return (torch.einsum("nd,mdk->mnk", x, W) + b[:, None, :]).softmax(-1)


def representation(ctx: DetectContext, kind: str, warmup_epochs: int) -> Tensor:
    """The features a logistic learner sees: the inputs, or a warmed-up model's penultimate features."""
    if kind not in REPRESENTATIONS:
        raise ValueError(f"unknown detect.representation '{kind}'; known: {', '.join(REPRESENTATIONS)}")
    return ctx.inputs() if kind == "inputs" else ctx.features(warmup_epochs)


def out_of_fold_probs(
    ctx: DetectContext, fold_of: Tensor, learner: str, x_features: Tensor | None, epochs: int
) -> Tensor:
    """probs [N, C]: each sample's predicted distribution from a model trained on the other folds."""
    k = int(fold_of.max()) + 1
    n = len(fold_of)
    probs = torch.empty(n, ctx.num_classes, dtype=torch.float64)
    if learner == "logistic":
        masks = torch.stack([fold_of != f for f in range(k)])
        W, b = fit_logistic(x_features, ctx.y, masks, ctx.num_classes)
        every = logistic_probs(x_features, W, b).cpu()
        for f in range(k):
            probs[fold_of == f] = every[f][fold_of == f].double()
        return probs
    for f in range(k):
        test = (fold_of == f).nonzero().squeeze(1)
        train = (fold_of != f).nonzero().squeeze(1)
        probs[test] = ctx.fit_predict(train, test, epochs).double().cpu()
    return probs


def check_learner(name: str, learner: str, folds: int) -> None:
    if learner not in LEARNERS:
        raise ValueError(f"unknown detect.learner '{learner}'; known: {', '.join(LEARNERS)}")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"detect.folds must be an integer >= 2, got {folds!r}")


def fold_accuracy(probs: Tensor, y: Tensor) -> float:
    return float((probs.argmax(-1) == y).double().mean()) if len(y) else math.nan

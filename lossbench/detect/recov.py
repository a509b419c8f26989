"""ReCoV and fastReCoV: noisy labels found through repeated cross-validation.

Jianan Chen, Vishwesh Ramanathan, Tony Xu, Anne L. Martel 2023, "Cross-Validation
Is All You Need: A Statistical Approach To Label Noise Estimation", arXiv:2306.13990
(official code GJiananChen/ReCoV, read 2026-12: mushroom/mushroom_recov.py,
cifar10n/cifar_fastrecov.py, utils/sample.py).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from torch import Tensor

from lossbench.detect.base import DetectContext, Detection, Detector, register_detector
from lossbench.detect.folds import (
    check_learner,
    fit_logistic,
    kfold,
    logistic_probs,
    out_of_fold_probs,
    representation,
)

PAPER = "Chen et al. 2023 (ReCoV)"
log = logging.getLogger(__name__)
DECISIONS = ("bh", "closest")
FOLD_METRICS = ("auc", "accuracy")


def fold_score(pred: Tensor, y: Tensor, num_classes: int, metric: str) -> float:
    """How well a fold was predicted: ``accuracy``, or ``auc``, the official code's
    ``roc_auc_score(y_test, lr.predict(X_test))`` (mushroom/mushroom_recov.py): the ROC AUC of the
    predicted classes, which for two classes is (TPR + TNR) / 2. Beyond two classes (the code is binary)
    it is the macro one-vs-rest mean of (P(pred = c | y = c) + P(pred != c | y != c)) / 2 over the classes
    with both positives and negatives in the fold (scikit-learn's macro AUC of the one-hot predictions);
    a fold of one class scores 0.5."""
    if metric == "accuracy":
        return float((pred == y).double().mean())
    hits = []
    for c in range(num_classes):
        pos, said = y == c, pred == c
        if pos.any() and not pos.all():
            hits.append(0.5 * (float(said[pos].double().mean()) + float((~said[~pos]).double().mean())))
    return float(np.mean(hits)) if hits else 0.5


def _check_alpha(alpha: float) -> None:
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"detect.alpha (the FDR level) must be in (0, 1), got {alpha}")


def binomial_flags(
    counts: Tensor, repetitions: int, folds: int, alpha: float, decision: str = "bh"
) -> tuple[Tensor, Tensor]:
    """(flags, p-values) of the one-sided binomial test on worst-fold counts, FDR-corrected.

    Under the null (a clean label), a sample lands in the worst of k folds with
    probability 1/k in each of R repetitions: count ~ Binomial(R, 1/k). The
    p-value is P(X > count) (the official code's 1 - pbinom(count)).
    ``decision = "bh"``: flag what the Benjamini-Hochberg procedure rejects at
    level alpha (the paper's "FDR correction"). ``decision = "closest"``: the
    official code's rule, which takes the raw p-value whose BH-adjusted value is
    closest to alpha, turns it into a count threshold t = qbinom(1 - p, R, 1/k)
    and flags count > t; it can differ from the BH rejections near the boundary.
    """
    if decision not in DECISIONS:
        raise ValueError(f"unknown detect.decision '{decision}'; known: {', '.join(DECISIONS)}")
    c = counts.double().numpy()
    from scipy.stats import binom, false_discovery_control  # here: scipy.stats costs 0.7 s to import

    p = binom.sf(c, repetitions, 1.0 / folds)
    adjusted = false_discovery_control(p, method="bh")
    if decision == "bh":
        flags = adjusted <= alpha
    else:
        closest = p[int(np.argmin(np.abs(adjusted - alpha)))]
        flags = c > binom.ppf(1.0 - closest, repetitions, 1.0 / folds)
    return torch.as_tensor(flags), torch.as_tensor(p)


def min_detectable_share(n: int, flagged: int, repetitions: int, folds: int, alpha: float) -> float:
    """The worst-fold share a label needs, on average, to be flagged half the time at this R.

    A right label lands in the worst fold with probability 1/k, so its count has mean R/k and
    standard deviation sqrt(R (1/k)(1 - 1/k)); Benjamini-Hochberg flagging m of n labels rejects
    p-values up to about alpha max(m, 1) / n, i.e. counts above R/k + z sqrt(R (1/k)(1 - 1/k)),
    z = Phi^-1(1 - alpha max(m, 1) / n) (normal approximation). A wrong label whose share is
    s = 1/k + z sqrt((1/k)(1 - 1/k) / R) clears that bar in about half the repetitions of the
    experiment; the bar falls as 1 / sqrt(R) (scripts/recov_power.py reads the shares of wrong
    labels off finished runs and predicts the recall at other R).
    """
    from scipy.stats import norm

    p0 = 1.0 / folds
    z = float(norm.isf(alpha * max(flagged, 1) / n))
    return p0 + z * math.sqrt(p0 * (1.0 - p0) / repetitions)


@register_detector("recov")
class ReCoV(Detector):
    """ReCoV: count how often each sample falls in the worst-performing fold of repeated k-fold CV.

    For each of R repetitions the training split is cut into k random folds; a
    learner is fitted on every k - 1 folds and scored on the held-out one (its
    noisy labels) by ``fold_metric``; the samples of the worst fold get one
    count. ``fold_metric: auc`` (default) is the official code's score, the ROC
    AUC of the predicted classes (``fold_score``; mushroom_recov.py, its
    classification experiment; HECKTOR_recov.py takes the C-index of its
    survival task); the paper speaks of the worst-performing fold without
    naming a metric for classification. ``accuracy`` was lossbench's earlier
    choice; the two agree for balanced binary folds.
    A one-sided binomial test (count ~ Binomial(R, 1/k) for a clean label) with
    Benjamini-Hochberg FDR correction at ``alpha`` flags the labels
    (``binomial_flags``); the estimated rate is the flagged share. Paper and code
    defaults: k = 5, alpha = 0.05, the BH procedure; the official code runs up to
    R = 5^7 = 78,125 repetitions of a logistic regression (mushroom), reporting
    5^3 .. 5^7. Here R = 625 (5^4) by default, since a neural network per fold
    is costlier; the test's power grows with R. ``learner: logistic`` (the
    code's scikit-learn LogisticRegression, C = 1, fitted batched on the
    ``representation``: the inputs, or the penultimate features of a warm-up
    model) or ``model`` (the run's architecture, ``epochs`` per fold; R x k
    trainings). Score: 1 - p-value.
    """

    name = "recov"
    paper = PAPER

    def __init__(
        self,
        folds: int = 5,
        repetitions: int = 625,
        alpha: float = 0.05,
        decision: str = "bh",
        learner: str = "logistic",
        representation: str = "inputs",
        warmup_epochs: int = 10,
        epochs: int = 10,
        fold_metric: str = "auc",
    ) -> None:
        check_learner("recov", learner, folds)
        if fold_metric not in FOLD_METRICS:
            raise ValueError(f"unknown detect.fold_metric '{fold_metric}'; known: {', '.join(FOLD_METRICS)}")
        self.fold_metric = fold_metric
        _check_alpha(alpha)
        if isinstance(repetitions, bool) or not isinstance(repetitions, int) or repetitions < 1:
            raise ValueError(f"detect.repetitions must be a positive integer, got {repetitions!r}")
        if decision not in DECISIONS:
            raise ValueError(f"unknown detect.decision '{decision}'; known: {', '.join(DECISIONS)}")
        self.folds, self.repetitions, self.alpha, self.decision = folds, repetitions, float(alpha), decision
        self.learner, self.representation = learner, representation
        self.warmup_epochs, self.epochs = int(warmup_epochs), int(epochs)

    def worst_fold_counts(self, ctx: DetectContext) -> tuple[Tensor, int]:
        """counts [N]: in how many repetitions each sample was in the worst fold; and the trainings."""
        gen = ctx.generator()
        n = len(ctx.y)
        partitions = [kfold(n, self.folds, gen) for _ in range(self.repetitions)]
        y = ctx.y.cpu()
        counts = torch.zeros(n, dtype=torch.long)
        if self.learner == "logistic":
            x = representation(ctx, self.representation, self.warmup_epochs).cpu()
            per_block = max(1, 4096 // self.folds)
            for lo in range(0, self.repetitions, per_block):
                block = partitions[lo : lo + per_block]
                masks = torch.stack([fold_of != f for fold_of in block for f in range(self.folds)])
                W, b = fit_logistic(x, y, masks, ctx.num_classes)
                pred = logistic_probs(x, W, b).argmax(-1)  # [M, N]
                for r, fold_of in enumerate(block):
                    scores = [self._score(pred[r * self.folds + f], y, fold_of == f, ctx.num_classes)
                              for f in range(self.folds)]
                    counts[fold_of == int(np.argmin(scores))] += 1
        else:
            for fold_of in partitions:
                pred = out_of_fold_probs(ctx, fold_of, "model", None, self.epochs).argmax(-1)
                scores = [self._score(pred, y, fold_of == f, ctx.num_classes) for f in range(self.folds)]
                counts[fold_of == int(np.argmin(scores))] += 1
        return counts, self.repetitions * self.folds

    def _score(self, pred: Tensor, y: Tensor, rows: Tensor, num_classes: int) -> float:
        return fold_score(pred[rows], y[rows], num_classes, self.fold_metric)

    def find(self, ctx: DetectContext) -> Detection:
        counts, trainings = self.worst_fold_counts(ctx)
        flags, p = binomial_flags(counts, self.repetitions, self.folds, self.alpha, self.decision)
        n, flagged = len(counts), int(flags.sum())
        bar = min_detectable_share(n, flagged, self.repetitions, self.folds, self.alpha)
        if flagged < 0.01 * n:
            log.warning(
                "recov flagged %d of %d labels at detect.repetitions=%d: a wrong label is flagged only if "
                "it lands in the worst fold in about %.3f of the repetitions (a right one: %.3f); the bar "
                "falls as 1/sqrt(repetitions), so raise detect.repetitions if labels may be wrong "
                "(scripts/recov_power.py estimates how far)",
                flagged, n, self.repetitions, bar, 1.0 / self.folds)
        return Detection(
            flags=flags,
            scores=(1.0 - p).float(),
            estimated_rate=float(flags.double().mean()),
            trainings=trainings,
            info={"worst_fold_share_mean": float(counts.double().mean() / self.repetitions),
                  "min_detectable_share": bar},
        )


def weighted_folds(memory: Tensor, k: int, tau: float, generator: torch.Generator) -> Tensor:
    """fold_of [N] from fastReCoV's weighted fold sampling (the official utils/sample.py rule).

    Samples are ordered by drawing without replacement with probabilities
    softmax(memory / tau) (tau -> 0: by decreasing memory; tau -> inf: uniformly);
    the first floor(N/k) form the "best" fold, the last N - (k-1) floor(N/k) the
    "worst" one, and the rest is cut into k - 2 folds in order.
    """
    n = len(memory)
    if tau < 1e-4:
        order = torch.argsort(memory, descending=True, stable=True)
    elif tau > 1e4:
        order = torch.randperm(n, generator=generator)
    else:
        weights = torch.softmax(memory.double() / tau, 0)
        order = torch.multinomial(weights, n, replacement=False, generator=generator)
    size = n // k
    fold_of = torch.empty(n, dtype=torch.long)
    fold_of[order[:size]] = 0
    fold_of[order[(k - 1) * size :]] = k - 1
    rest = order[size : (k - 1) * size]
    chunk = -(-len(rest) // (k - 2)) if k > 2 else len(rest)
    for i in range(k - 2):
        fold_of[rest[i * chunk : (i + 1) * chunk]] = 1 + i
    return fold_of


@register_detector("fast_recov")
class FastReCoV(Detector):
    """fastReCoV: an exponential memory of each label's out-of-fold likelihood, folds re-drawn by it.

    Each of T iterations fits the learner on k - 1 folds (leaving out a random
    ``drop_fraction`` of the currently flagged samples) and takes, for every
    sample, the held-out probability of its label p_i; w_i = 1 - (max_j p_j - p_i);
    memory <- ema w + (1 - ema) memory (from 0); the next folds are drawn by
    ``weighted_folds(memory, k, tau)``; flagged are the samples with memory <=
    ``threshold``. Defaults from the official cifar_fastrecov.py: T = 10, k = 5,
    tau = 0.1, threshold 0.3, drop 0.8, ema 0.3, a logistic regression on frozen
    features. The paper uses a pretrained backbone's features (DINOv2 for
    CIFAR-10N); none is available offline here, so ``representation: features``
    (the default) takes the penultimate features of the run's architecture
    warmed up for ``warmup_epochs`` with cross-entropy on the noisy labels, and
    ``inputs`` takes the raw inputs. Score: 1 - memory / max memory.
    """

    name = "fast_recov"
    paper = PAPER

    def __init__(
        self,
        iterations: int = 10,
        folds: int = 5,
        tau: float = 0.1,
        threshold: float = 0.3,
        drop_fraction: float = 0.8,
        ema: float = 0.3,
        learner: str = "logistic",
        representation: str = "features",
        warmup_epochs: int = 10,
        epochs: int = 10,
    ) -> None:
        check_learner("fast_recov", learner, folds)
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"detect.iterations must be a positive integer, got {iterations!r}")
        if not tau >= 0:
            raise ValueError(f"detect.tau must be >= 0, got {tau}")
        if not 0.0 <= drop_fraction <= 1.0:
            raise ValueError(f"detect.drop_fraction must be in [0, 1], got {drop_fraction}")
        if not 0.0 < ema <= 1.0:
            raise ValueError(f"detect.ema must be in (0, 1], got {ema}")
        if folds < 3:
            raise ValueError(
                f"fast_recov needs detect.folds >= 3 (a best, a worst and a middle fold), got {folds}"
            )
        self.iterations, self.folds, self.tau, self.threshold = (
            iterations,
            folds,
            float(tau),
            float(threshold),
        )
        self.drop_fraction, self.ema = float(drop_fraction), float(ema)
        self.learner, self.representation = learner, representation
        self.warmup_epochs, self.epochs = int(warmup_epochs), int(epochs)

    def find(self, ctx: DetectContext) -> Detection:
        gen = ctx.generator()
        n = len(ctx.y)
        y = ctx.y.cpu()
        x = (
            representation(ctx, self.representation, self.warmup_epochs).cpu()
            if self.learner == "logistic"
            else None
        )
        memory = torch.zeros(n, dtype=torch.float64)
        flags = torch.zeros(n, dtype=torch.bool)
        fold_of = kfold(n, self.folds, gen)
        for _ in range(self.iterations):
            flagged = flags.nonzero().squeeze(1)
            train_masks = []
            for f in range(self.folds):
                mask = fold_of != f
                if len(flagged):
                    drop = flagged[
                        torch.randperm(len(flagged), generator=gen)[: int(self.drop_fraction * len(flagged))]
                    ]
                    mask = mask.clone()
                    mask[drop] = False
                train_masks.append(mask)
            like = self._held_out_likelihood(ctx, x, y, fold_of, torch.stack(train_masks))
            memory = self.ema * (1.0 - (like.max() - like)) + (1.0 - self.ema) * memory
            fold_of = weighted_folds(memory, self.folds, self.tau, gen)
            flags = memory <= self.threshold
        top = float(memory.max())
        scores = (1.0 - memory / top).clamp(0, 1) if top > 0 else torch.ones(n, dtype=torch.float64)
        return Detection(
            flags=flags,
            scores=scores.float(),
            estimated_rate=float(flags.double().mean()),
            trainings=self.iterations * self.folds,
        )

    def _held_out_likelihood(
        self, ctx: DetectContext, x: Tensor | None, y: Tensor, fold_of: Tensor, train_masks: Tensor
    ) -> Tensor:
        """p_i: the probability the fold model that did not see sample i gives its label."""
        like = torch.empty(len(y), dtype=torch.float64)
        if self.learner == "logistic":
            W, b = fit_logistic(x, y, train_masks, ctx.num_classes)
            probs = logistic_probs(x, W, b)
            for f in range(self.folds):
                rows = fold_of == f
                like[rows] = probs[f][rows].gather(1, y[rows][:, None]).squeeze(1).double()
            return like
        for f in range(self.folds):
            test = (fold_of == f).nonzero().squeeze(1)
            train = train_masks[f].nonzero().squeeze(1)
            probs = ctx.fit_predict(train, test, self.epochs).double().cpu()
            like[test] = probs.gather(1, y[test][:, None]).squeeze(1)
        return like


__all__ = ["FastReCoV", "ReCoV", "binomial_flags", "fold_score", "out_of_fold_probs", "weighted_folds"]

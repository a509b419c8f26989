"""Confident learning through cleanlab: label issues from out-of-fold predicted probabilities.

Curtis G. Northcutt, Lu Jiang, Isaac L. Chuang 2021, "Confident Learning:
Estimating Uncertainty in Dataset Labels", JAIR; the cleanlab package (2.9).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lossbench.detect.base import DetectContext, Detection, Detector, register_detector
from lossbench.detect.folds import check_learner, kfold, out_of_fold_probs, representation

INSTALL_HINT = (
    "confident learning needs cleanlab: pip install 'lossbench[detect]' (or pip install cleanlab==2.9.0)"
)
FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given")


def _cleanlab():
    try:
        import cleanlab.count
        import cleanlab.filter
        import cleanlab.rank
    except ImportError:
        raise ValueError(INSTALL_HINT) from None
    return cleanlab


def cleanlab_detection(labels: np.ndarray, pred_probs: np.ndarray, filter_by: str) -> Detection:
    """cleanlab on given out-of-fold probabilities: flags (find_label_issues), scores
    (1 - get_label_quality_scores), and T from the estimated joint of (given, true) labels.

    cleanlab's joint Q[s, y] = P(given = s, true = y), so T[i, j] = P(given = j | true = i)
    = Q[j, i] / sum_j Q[j, i]. The estimated rate is the share of flagged labels.
    """
    cl = _cleanlab()
    # n_jobs=1: cleanlab otherwise forks a multiprocessing pool (one worker per core), and a fork of
    # a process whose torch/OpenMP threads hold locks can hang for good (seen here on MNIST); the
    # pool only splits the per-class pruning, so the flags are the same
    flags = cl.filter.find_label_issues(labels=labels, pred_probs=pred_probs, filter_by=filter_by, n_jobs=1)
    quality = cl.rank.get_label_quality_scores(labels=labels, pred_probs=pred_probs)
    joint = cl.count.estimate_joint(labels=labels, pred_probs=pred_probs)
    col = joint.sum(axis=0, keepdims=True)
    T = (joint / np.where(col > 0, col, 1.0)).T
    return Detection(
        flags=torch.as_tensor(np.asarray(flags, dtype=bool)),
        scores=torch.as_tensor(1.0 - np.asarray(quality), dtype=torch.float32),
        estimated_rate=float(np.mean(flags)),
        estimated_T=T,
        info={"joint_rate": float(1.0 - np.trace(joint))},
    )


@register_detector("confident_learning")
class ConfidentLearning(Detector):
    """Confident learning (cleanlab.filter.find_label_issues) on out-of-fold probabilities.

    The probabilities come from lossbench's own ``folds``-fold cross-validation
    (seeded from the run's seed, the same folds as the other detectors) with
    ``learner: model`` (the run's architecture, ``epochs`` per fold; default) or
    ``logistic`` (a logistic regression on the ``representation``). cleanlab's
    default ``filter_by = prune_by_noise_rate``. Besides the flags it estimates
    the transition matrix from cleanlab's joint (scored as T_mae).
    """

    name = "confident_learning"
    paper = "Northcutt et al. 2021"

    def __init__(
        self,
        folds: int = 5,
        learner: str = "model",
        representation: str = "inputs",
        filter_by: str = "prune_by_noise_rate",
        warmup_epochs: int = 10,
        epochs: int = 10,
    ) -> None:
        check_learner("confident_learning", learner, folds)
        if filter_by not in FILTERS:
            raise ValueError(f"unknown detect.filter_by '{filter_by}'; known: {', '.join(FILTERS)}")
        _cleanlab()
        self.folds, self.learner, self.representation, self.filter_by = (
            folds,
            learner,
            representation,
            filter_by,
        )
        self.warmup_epochs, self.epochs = int(warmup_epochs), int(epochs)

    def out_of_fold(self, ctx: DetectContext) -> Tensor:
        fold_of = kfold(len(ctx.y), self.folds, ctx.generator())
        x = (
            representation(ctx, self.representation, self.warmup_epochs).cpu()
            if self.learner == "logistic"
            else None
        )
        return out_of_fold_probs(ctx, fold_of, self.learner, x, self.epochs)

    def find(self, ctx: DetectContext) -> Detection:
        probs = self.out_of_fold(ctx)
        found = cleanlab_detection(ctx.y.cpu().numpy(), probs.numpy(), self.filter_by)
        found.trainings = self.folds
        return found

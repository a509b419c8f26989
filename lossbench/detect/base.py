"""The detector contract: (inputs or features, noisy labels, seeded generator) -> flags, scores, a rate.

A detector runs once, before training, on the training split (validation and
test are never looked at). It says which labels it believes wrong (``flags``),
how strongly (``scores``, higher = more likely wrong) and how many labels are
wrong overall (``estimated_rate``); some also estimate the transition matrix.
lossbench knows the true noise mask of every run, so each detection is scored
against it (``detection_scores``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from lossbench.core.registry import Registry

DETECTORS: Registry = Registry("detector")
register_detector = DETECTORS.register


@dataclass
class Detection:
    """What a detector found over the N training samples (positions as in ``split.x_train``).

    ``flags`` [N] bool: label judged wrong. ``scores`` [N] float in [0, 1]:
    higher means more likely wrong. ``estimated_T[i, j]`` estimates
    P(noisy = j | clean = i) where the detector gives one.
    """

    flags: Tensor
    scores: Tensor
    estimated_rate: float
    estimated_T: np.ndarray | None = None
    trainings: int = 0
    seconds: float = 0.0
    info: dict = field(default_factory=dict)


@dataclass
class DetectContext:
    """What a detector may use: the training inputs and noisy labels, and ways to fit models.

    ``x`` [N, ...] and ``y`` [N] are the training split (on the run's device);
    ``inputs()`` gives them flattened to float features as the model sees them;
    ``features()`` gives the penultimate features [N, D] of a model of the
    run's architecture warmed up with cross-entropy on the noisy labels (see
    the detector's ``warmup_epochs``); ``fit_predict(train_pos, test_pos,
    epochs)`` trains a fresh model of the run's architecture on the samples at
    ``train_pos`` and returns its softmax probabilities [len(test_pos), C] on
    those at ``test_pos``. ``seed`` seeds the detector's own draws.
    """

    x: Tensor
    y: Tensor
    num_classes: int
    seed: int
    device: torch.device
    inputs: Callable[[], Tensor]
    features: Callable[[int], Tensor]
    fit_predict: Callable[[Tensor, Tensor, int], Tensor]

    def generator(self) -> torch.Generator:
        """A CPU generator seeded from the run's seed (folds and fold orders are drawn from it)."""
        return torch.Generator().manual_seed(int(self.seed) + 7919)


class Detector:
    """Base class. Subclasses implement ``find(ctx) -> Detection``; ``detect`` times it."""

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""

    def find(self, ctx: DetectContext) -> Detection:
        raise NotImplementedError

    def detect(self, ctx: DetectContext) -> Detection | None:
        started = time.perf_counter()
        found = self.find(ctx)
        found.seconds = time.perf_counter() - started
        return found


@register_detector("none")
class NoDetection(Detector):
    """No detection (the default): ``detect`` gives None and the run trusts every label."""

    name = "none"

    def detect(self, ctx: DetectContext) -> Detection | None:
        return None


def detection_auroc(scores: Tensor, truth: Tensor) -> float:
    """AUROC of detection scores against the true noise mask (torchmetrics' binary AUROC; ties
    count half); NaN unless the mask holds both noisy and clean labels."""
    if truth.all() or not truth.any():
        return float("nan")
    from torchmetrics.functional.classification import binary_auroc

    return float(binary_auroc(scores.detach().double().cpu(), truth.long()))


def detection_scores(
    detection: Detection, is_noisy: Tensor, realized_rate: float, true_T: np.ndarray | None = None
) -> dict:
    """A detection against the truth: precision, recall and F1 of the flags against ``is_noisy``,
    the estimated against the realized noise rate, and the MAE of the estimated T where given.

    precision = |flagged and noisy| / |flagged| (1 when nothing is flagged and nothing is
    noisy, 0 when nothing is flagged but some labels are noisy); recall = |flagged and
    noisy| / |noisy| (1 when no label is noisy); F1 their harmonic mean (0 when both are 0).
    ``auroc``: the area under the ROC curve of the scores against the mask (torchmetrics'
    binary AUROC; P(score of a noisy label > score of a clean one), ties counted half), which
    says how well a detector ranks the labels whatever its threshold; NaN unless both kinds occur.
    """
    flags = detection.flags.bool().cpu()
    truth = is_noisy.bool().cpu()
    tp = int((flags & truth).sum())
    n_flag, n_noisy = int(flags.sum()), int(truth.sum())
    precision = tp / n_flag if n_flag else (1.0 if n_noisy == 0 else 0.0)
    recall = tp / n_noisy if n_noisy else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    out = {
        "flagged": n_flag,
        "estimated_rate": float(detection.estimated_rate),
        "realized_rate": float(realized_rate),
        "rate_error": float(detection.estimated_rate) - float(realized_rate),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auroc": detection_auroc(detection.scores, truth),
        "trainings": int(detection.trainings),
        "seconds": float(detection.seconds),
    }
    if detection.estimated_T is not None and true_T is not None:
        out["T_mae"] = float(np.abs(np.asarray(detection.estimated_T) - np.asarray(true_T)).mean())
    out.update(detection.info)
    return out

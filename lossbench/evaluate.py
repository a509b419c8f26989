"""End-of-run evaluation of a trained model: every figure summary.json holds about it.

One function serves a run that just trained and a saved model evaluated
later, so a metric added here reaches both.
"""

from __future__ import annotations

from torch import nn

from lossbench.data.split import Split
from lossbench.data.transforms import BatchTransform
from lossbench.losses.base import Loss
from lossbench.metrics import summarize
from lossbench.train.trainer import Trainer


def evaluate_model(trainer: Trainer, model: nn.Module, split: Split, loss: Loss | None = None) -> dict:
    """Test accuracy and calibration (before and after post-hoc calibration fitted on validation,
    once on its noisy labels and once on its clean ones).

    The split is on the trainer's device; the model is evaluated in eval mode
    at the trainer's precision and memory format. With the run's ``loss``, the
    logits scored are ``loss.prediction_logits`` of the model's (a learned link).
    """
    transform = BatchTransform(split, trainer.channels_last)
    val_logits = trainer.predict(model, split.x_val, transform, loss)
    test_logits = trainer.predict(model, split.x_test, transform, loss)
    out = summarize(val_logits, split.y_val_noisy, test_logits, split.y_test, split.y_val)
    out["class_names"] = split.class_names
    return out

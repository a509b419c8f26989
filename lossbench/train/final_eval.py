"""End-of-run evaluation of a trained model: every figure summary.json holds about it.

One function serves a run that just trained and a saved model evaluated
later, so a metric added here reaches both.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from torch import nn

from lossbench.adversarial.evaluation import RobustEvaluation
from lossbench.calibrate import Calibrator, default_calibrators
from lossbench.calibrate.views import view_logits
from lossbench.data.split import Split
from lossbench.data.transforms import BatchTransform
from lossbench.losses.base import Loss
from lossbench.metrics import summarize
from lossbench.train.trainer import Trainer


def evaluate_model(trainer: Trainer, model: nn.Module, split: Split,
                   calibrators: Sequence[Calibrator] | None = None,
                   robust: RobustEvaluation | None = None, loss: Loss | None = None,
                   smoothed: bool = False) -> dict:
    """Test accuracy and calibration, before and after each post-hoc calibrator (default: temperature
    scaling), each fitted on validation once on its noisy labels and once on its clean ones; and the
    robust test accuracy when ``robust`` (the ``attack`` config group) is given.

    The split is on the trainer's device; the model is evaluated in eval mode
    at the trainer's precision and memory format. Calibrators that need views
    (``needs_views``) get the model's logits on their transformed copies of the
    validation and test inputs; the time those forward passes take is recorded
    as <key>_views_seconds. With the run's ``loss``, the logits scored are
    ``loss.prediction_logits`` of the model's (a learned link, LegendreTron's). ``smoothed``: SmoothECE
    too (the run's ``smooth_ece``).
    """
    if calibrators is None:
        calibrators = default_calibrators()
    transform = BatchTransform(split, trainer.channels_last)
    val_logits = trainer.predict(model, split.x_val, transform, loss)
    test_logits = trainer.predict(model, split.x_test, transform, loss)
    val_views, test_views, seconds = {}, {}, {}
    is_image = split.x_train.ndim == 4
    feature_std = None if is_image else split.x_train.float().std(0)
    for calibrator in calibrators or ():
        if not calibrator.needs_views:
            continue
        names = calibrator.view_names(is_image)
        started = time.perf_counter()
        val_views[calibrator.key] = view_logits(trainer, model, split.x_val, transform, names,
                                                calibrator.seed, feature_std, loss)
        test_views[calibrator.key] = view_logits(trainer, model, split.x_test, transform, names,
                                                 calibrator.seed, feature_std, loss)
        seconds[f"{calibrator.key}_views_seconds"] = time.perf_counter() - started
    out = summarize(val_logits, split.y_val_noisy, test_logits, split.y_test, split.y_val, calibrators,
                    val_views, test_views, smoothed)
    out.update(seconds)
    out["class_names"] = split.class_names
    if split.extras.get("record"):  # what a dataset records of itself (a tabular file, split, scaling)
        out["data"] = split.extras["record"]
    if robust is not None:
        out.update(robust.evaluate(model, split, transform, loss))
    return out

"""Detection inside a run: summary figures, detect.npz, reuse on resume, one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossbench.detect.base import Detection, Detector
from lossbench.detect.runner import run_detector

FAST = ["trainer.epochs=2", "model.hidden=[32]", "noise=sym40"]


def test_confident_learning_and_drop_flagged_in_a_run(run_once):
    pytest.importorskip("cleanlab")
    out, summary, _ = run_once(*FAST, "detect=confident_learning", "detect.epochs=3", "reweight=drop_flagged")
    assert summary["status"] == "completed" and summary["detect"] == "confident_learning"
    for key in (
        "detect_precision",
        "detect_recall",
        "detect_f1",
        "detect_estimated_rate",
        "detect_realized_rate",
        "detect_T_mae",
        "detect_seconds",
        "detect_trainings",
    ):
        assert key in summary
    saved = np.load(out / "detect.npz")
    assert summary["detect_flagged"] == int(saved["flags"].sum())
    assert summary["reweight_kept"] == summary["num_train"] - summary["detect_flagged"]
    assert abs(summary["detect_realized_rate"] - summary["realized_noise_rate"]) < 0.05


class _Counting(Detector):
    calls = 0

    def find(self, ctx):
        type(self).calls += 1
        return Detection(
            flags=torch.tensor([True, False]),
            scores=torch.tensor([0.9, 0.1]),
            estimated_rate=0.5,
            estimated_T=np.eye(2),
            info={"extra": 1.5},
        )


def test_a_resuming_run_reuses_the_saved_detection(tmp_path):
    ctx = type("Ctx", (), {"device": torch.device("cpu")})()
    first = run_detector(_Counting(), ctx, tmp_path)
    again = run_detector(_Counting(), ctx, tmp_path, reuse=True)
    assert _Counting.calls == 1
    assert torch.equal(first.flags, again.flags) and torch.equal(first.scores, again.scores)
    assert np.array_equal(again.estimated_T, np.eye(2)) and again.info == {"extra": 1.5}
    run_detector(_Counting(), ctx, tmp_path)
    assert _Counting.calls == 2


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["detect=recov", "detect.folds=1"], "detect.folds must be an integer >= 2"),
        (["detect=recov", "detect.alpha=0"], "detect.alpha (the FDR level) must be in (0, 1)"),
        (["reweight=drop_flagged"], "add detect=recov, detect=fast_recov or detect=confident_learning"),
    ],
)
def test_bad_detection_settings_are_refused_in_one_line(run_once, overrides, message):
    out, summary, proc = run_once(*FAST, *overrides, check=False)
    assert proc.returncode == 2 and summary is None
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("lossbench: error:") and message in lines[-1]
    assert not (out / "metrics.jsonl").exists()

"""Best, final and validation-selected figures from a hand-made per-epoch history."""

from __future__ import annotations

import pytest

from lossbench.run import _history_figures


def test_history_figures_by_hand():
    history = [
        # epoch, val acc, test acc: validation peaks at epoch 1 (tie at 3 goes to the earlier epoch),
        # test peaks at epoch 2; the last epoch is 3.
        {"epoch": 0, "val_acc": 0.50, "test_acc": 0.55, "train_clean_acc": 0.4, "memorization": 0.0,
         "train_seconds": 1.0, "throughput": 100.0},
        {"epoch": 1, "val_acc": 0.70, "test_acc": 0.72, "train_clean_acc": 0.6, "memorization": 0.1,
         "train_seconds": 1.0, "throughput": 100.0},
        {"epoch": 2, "val_acc": 0.65, "test_acc": 0.80, "train_clean_acc": 0.7, "memorization": 0.3,
         "train_seconds": 2.0, "throughput": 50.0},
        {"epoch": 3, "val_acc": 0.70, "test_acc": 0.75, "train_clean_acc": 0.8, "memorization": 0.5,
         "train_seconds": 1.0, "throughput": 100.0},
    ]
    out = _history_figures(history)
    assert out["final_test_acc"] == 0.75
    assert out["best_test_acc"] == 0.80
    assert out["best_val_acc"] == 0.70 and out["best_val_epoch"] == 1
    assert out["test_acc_at_best_val"] == 0.72
    assert out["final_train_clean_acc"] == 0.8 and out["final_memorization"] == 0.5
    assert out["train_seconds"] == 5.0
    assert out["throughput"] == pytest.approx(400 / 5)  # 100 + 100 + 100 + 100 samples in 5 s

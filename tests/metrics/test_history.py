"""Best, final and validation-selected figures (per label view) from a hand-made per-epoch history."""

from __future__ import annotations

import pytest

from lossbench.lifecycle.run import _history_figures
from lossbench.metrics import selection_figures


def test_history_figures_by_hand():
    history = [
        # epoch, val acc (noisy labels), val_clean acc, test acc: noisy validation peaks at epoch 1 (the
        # tie at 3 goes to the earlier epoch), clean validation at epoch 2, test at 2; the last is 3.
        {"epoch": 0, "val_acc": 0.50, "val_clean_acc": 0.60, "test_acc": 0.55, "train_clean_acc": 0.4,
         "memorization": 0.0, "train_seconds": 1.0, "throughput": 100.0},
        {"epoch": 1, "val_acc": 0.70, "val_clean_acc": 0.75, "test_acc": 0.72, "train_clean_acc": 0.6,
         "memorization": 0.1, "train_seconds": 1.0, "throughput": 100.0},
        {"epoch": 2, "val_acc": 0.65, "val_clean_acc": 0.82, "test_acc": 0.80, "train_clean_acc": 0.7,
         "memorization": 0.3, "train_seconds": 2.0, "throughput": 50.0},
        {"epoch": 3, "val_acc": 0.70, "val_clean_acc": 0.78, "test_acc": 0.75, "train_clean_acc": 0.8,
         "memorization": 0.5, "train_seconds": 1.0, "throughput": 100.0},
    ]
    out = _history_figures(history)
    assert out["final_test_acc"] == 0.75
    assert out["best_test_acc"] == 0.80
    assert out["best_val_acc_noisy"] == 0.70 and out["best_val_epoch_noisy"] == 1
    assert out["test_acc_at_best_val_noisy"] == 0.72
    assert out["best_val_acc_clean"] == 0.82 and out["best_val_epoch_clean"] == 2
    assert out["test_acc_at_best_val_clean"] == 0.80
    assert not {"best_val_acc", "best_val_epoch", "test_acc_at_best_val"} & out.keys()
    assert out["final_train_clean_acc"] == 0.8 and out["final_memorization"] == 0.5
    assert out["train_seconds"] == 5.0
    assert out["throughput"] == pytest.approx(400 / 5)  # 100 + 100 + 100 + 100 samples in 5 s


def test_selection_without_validation_gives_none():
    out = selection_figures([{"epoch": 0, "test_acc": 0.5}])
    assert out == {f"{k}_{v}": None for v in ("noisy", "clean")
                   for k in ("best_val_acc", "best_val_epoch", "test_acc_at_best_val")}

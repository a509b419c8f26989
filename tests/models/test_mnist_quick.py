"""The documented quick MNIST protocol: cnn4, one epoch, > 97% clean test accuracy."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_mnist_cnn4_quick_protocol(run_once, shared_data):
    _, summary, _ = run_once("+experiment=mnist_quick", f"data_dir={shared_data}", "trainer.device=cpu")
    assert summary["status"] == "completed"
    assert summary["dataset"] == "mnist" and summary["model"] == "cnn4"
    assert summary["num_train"] == 54000 and summary["num_test"] == 10000
    assert summary["test_acc"] > 0.97

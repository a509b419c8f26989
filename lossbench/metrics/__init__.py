"""Metrics over a whole split: functions of (logits, labels)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def accuracy(logits: Tensor, labels: Tensor) -> float:
    """Top-1 accuracy."""
    return (logits.argmax(1) == labels).float().mean().item()


def nll(logits: Tensor, labels: Tensor) -> float:
    """Mean negative log-likelihood of softmax(logits)."""
    return F.cross_entropy(logits.float(), labels).item()


def summarize(val_logits: Tensor, val_labels: Tensor, test_logits: Tensor, test_labels: Tensor) -> dict:
    """End-of-run metrics for summary.json (test metrics on clean labels)."""
    return {
        "test_acc": accuracy(test_logits, test_labels),
        "test_nll": nll(test_logits, test_labels),
    }

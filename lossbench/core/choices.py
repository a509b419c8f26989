"""Choices of settings that the config checks read before torch is imported (the losses import torch)."""

from __future__ import annotations

# loss.reduction: how the training step reduces a batch of per-sample losses, for every loss
REDUCTIONS = {"mean": "the mean over the batch's samples", "sum": "the sum: batch size times the mean"}

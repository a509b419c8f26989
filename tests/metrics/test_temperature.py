"""Temperature scaling, and the end-of-run summary built on it."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lossbench.metrics import CALIBRATION_KEYS, ece, fit_temperature, nll, summarize


def _calibrated(n: int, num_classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits z and labels drawn from softmax(z): a perfectly calibrated model."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, num_classes, generator=g) * 2
    y = torch.multinomial(z.softmax(1), 1, generator=g).squeeze(1)
    return z, y


def test_temperature_scaling_fixes_an_over_confident_model():
    z, y = _calibrated(4000, 10, 0)
    over = 3.0 * z  # the same ranking, three times too sharp
    t = fit_temperature(over, y)
    assert t == pytest.approx(3.0, rel=0.1)
    assert nll(over / t, y) < nll(over, y) - 0.2
    assert ece(over / t, y) < ece(over, y) / 3


def test_temperature_scaling_fixes_an_under_confident_model():
    z, y = _calibrated(4000, 10, 1)
    t = fit_temperature(z / 2.0, y)
    assert t == pytest.approx(0.5, rel=0.1)


def test_temperature_is_the_nll_minimum():
    z, y = _calibrated(500, 5, 2)
    z = 4.0 * z
    t = fit_temperature(z, y)
    for other in (t * 0.98, t * 1.02, 1.0):
        assert nll(z / t, y) <= nll(z / other, y) + 1e-12


def test_temperature_falls_back_to_one():
    y = torch.tensor([0, 1, 2])
    assert fit_temperature(torch.zeros(3, 3), y) == 1.0  # NLL does not depend on T
    assert fit_temperature(torch.zeros(0, 3), y[:0]) == 1.0  # nothing to fit on
    assert fit_temperature(torch.full((3, 3), float("nan")), y) == 1.0


def test_summarize_keys_and_consistency():
    z, y = _calibrated(600, 10, 3)
    out = summarize(2.5 * z[:200], y[:200], 2.5 * z[200:], y[200:])
    for key in ("test_acc", "temperature", "val_acc", "val_nll", "val_ece", "val_nll_ts", "val_ece_ts"):
        assert key in out
    for key in CALIBRATION_KEYS:
        assert f"test_{key}" in out and f"test_{key}_ts" in out
    assert "test_top5_acc" not in out  # ten classes: no top-5
    assert len(out["test_class_acc"]) == 10
    assert out["val_nll_ts"] < out["val_nll"]
    assert out["test_gap"] == pytest.approx(out["test_confidence"] - out["test_acc"], abs=1e-12)
    for name in ("test_reliability", "test_reliability_ts"):
        bins = out[name]
        assert len(bins["count"]) == bins["n_bins"] + 1 and sum(bins["count"]) == 400
        weighted = sum(k * abs(a - c) for a, c, k in zip(bins["accuracy"], bins["confidence"],
                                                         bins["count"], strict=True) if k) / 400
        key = "test_ece" if name == "test_reliability" else "test_ece_ts"
        assert weighted == pytest.approx(out[key], abs=1e-9)  # the diagram reproduces the ECE
    json.dumps(out)  # plain JSON types only


def test_summarize_top5_and_empty_validation():
    z, y = _calibrated(300, 20, 4)
    out = summarize(z[:0], y[:0], z, y)
    assert 0 <= out["test_acc"] <= out["test_top5_acc"] <= 1
    assert out["temperature"] == 1.0 and "val_nll" not in out
    assert out["test_nll_ts"] == pytest.approx(out["test_nll"])
    assert not math.isnan(out["test_ece_classwise"])

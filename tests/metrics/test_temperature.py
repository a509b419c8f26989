"""Temperature scaling, and the end-of-run summary built on it (one temperature per validation view)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lossbench.calibrate import default_calibrators
from lossbench.metrics import CALIBRATION_KEYS, RENAMED, ece, fit_temperature, nll, summarize


def _calibrated(n: int, num_classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits z and labels drawn from softmax(z): a perfectly calibrated model."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, num_classes, generator=g) * 2
    y = torch.multinomial(z.softmax(1), 1, generator=g).squeeze(1)
    return z, y


def _flip(y: torch.Tensor, num_classes: int, rate: float, seed: int) -> torch.Tensor:
    """Exactly round(rate n) labels moved to another class, uniformly (symmetric flip noise)."""
    g = torch.Generator().manual_seed(seed)
    n = len(y)
    chosen = torch.randperm(n, generator=g)[: round(rate * n)]
    shift = torch.randint(1, num_classes, (len(chosen),), generator=g)
    noisy = y.clone()
    noisy[chosen] = (y[chosen] + shift) % num_classes
    return noisy


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


def _nll_of(seed: int):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(300, 10, generator=g).double() * (0.1 + 10 * torch.rand(1, generator=g).item())
    y = torch.randint(0, 10, (300,), generator=g)
    return lambda log_t: torch.nn.functional.cross_entropy(z / math.exp(log_t), y).item()


SEARCHED = [_nll_of(seed) for seed in range(12)] + [
    lambda x: (x - 0.3) ** 2, lambda x: abs(x - 1.7), lambda x: -x, lambda x: x,  # inside, kink, both ends
    lambda x: math.cos(3 * x), lambda x: (x - 4.6) ** 4]  # several minima; flat near one end


@pytest.mark.parametrize("bounds, xatol, maxfun", [((math.log(1e-2), math.log(1e2)), 1e-6, 500),
                                                    ((-1.0, 1.0), 1e-5, 500), ((0.0, 10.0), 1e-3, 500),
                                                    ((0.0, 10.0), 1e-6, 6)])
def test_bounded_search_is_scipys_to_the_bit(bounds, xatol, maxfun):
    """The run's own Brent search stands in for scipy.optimize (whose import costs a run 0.25 s):
    every x, f(x) and call count must be scipy's, so temperatures recorded by either agree exactly."""
    from scipy.optimize import minimize_scalar

    from lossbench.metrics.temperature import minimize_bounded

    for f in SEARCHED:
        ours = minimize_bounded(f, *bounds, xatol=xatol, maxfun=maxfun)
        theirs = minimize_scalar(f, bounds=bounds, method="bounded",
                                 options={"xatol": xatol, "maxiter": maxfun})
        assert (ours.x, ours.fun, ours.nfev) == (theirs.x, theirs.fun, theirs.nfev)


def test_bounded_search_finds_a_parabolas_vertex_on_concrete_numbers():
    from lossbench.metrics.temperature import minimize_bounded

    found = minimize_bounded(lambda x: (x - 0.3) ** 2 + 2.0, -1.0, 1.0, xatol=1e-8)
    assert found.x == pytest.approx(0.3, abs=1e-8) and found.fun == pytest.approx(2.0, abs=1e-15)
    edge = minimize_bounded(lambda x: x, 2.0, 5.0, xatol=1e-6)  # the minimum at the low end
    assert edge.x == pytest.approx(2.0, abs=1e-5) and edge.x >= 2.0


def test_summarize_keys_and_consistency():
    z, y = _calibrated(600, 10, 3)
    noisy = _flip(y[:200], 10, 0.4, 0)
    out = summarize(2.5 * z[:200], noisy, 2.5 * z[200:], y[200:], y[:200], default_calibrators())
    for view in ("noisy", "clean"):
        assert f"temperature_{view}" in out and f"test_reliability_ts_{view}" in out
        for key in CALIBRATION_KEYS:
            assert f"test_{key}_ts_{view}" in out
    for key in ("val_acc", "val_nll", "val_ece", "val_nll_ts_noisy", "val_ece_ts_noisy",
                "val_clean_acc", "val_clean_nll", "val_clean_ece", "val_clean_nll_ts_clean",
                "val_clean_ece_ts_clean"):
        assert key in out, key
    assert not set(RENAMED) & set(out)  # the ambiguous names are gone
    assert "test_top5_acc" not in out  # ten classes: no top-5
    assert len(out["test_class_acc"]) == 10
    # each view's figures are those of its own labels and its own temperature
    assert out["val_acc"] == pytest.approx((z[:200].argmax(1) == noisy).double().mean().item())
    assert out["val_clean_acc"] == pytest.approx((z[:200].argmax(1) == y[:200]).double().mean().item())
    assert out["temperature_noisy"] == pytest.approx(fit_temperature(2.5 * z[:200], noisy))
    assert out["temperature_clean"] == pytest.approx(fit_temperature(2.5 * z[:200], y[:200]))
    assert out["test_nll_ts_clean"] == pytest.approx(nll(2.5 * z[200:] / out["temperature_clean"], y[200:]))
    assert out["val_nll_ts_noisy"] < out["val_nll"] and out["val_clean_nll_ts_clean"] < out["val_clean_nll"]
    assert out["test_gap"] == pytest.approx(out["test_confidence"] - out["test_acc"], abs=1e-12)
    for name, key in (("test_reliability", "test_ece"), ("test_reliability_ts_noisy", "test_ece_ts_noisy"),
                      ("test_reliability_ts_clean", "test_ece_ts_clean")):
        bins = out[name]
        assert len(bins["count"]) == bins["n_bins"] + 1 and sum(bins["count"]) == 400
        weighted = sum(k * abs(a - c) for a, c, k in zip(bins["accuracy"], bins["confidence"],
                                                         bins["count"], strict=True) if k) / 400
        assert weighted == pytest.approx(out[key], abs=1e-9)  # the diagram reproduces the ECE
    json.dumps(out)  # plain JSON types only


def test_noisy_validation_labels_flatten_the_temperature_and_the_oracle_does_not():
    """Issue 12 item 7: a calibrated model, validation labels with 60% flip noise. T fitted on the noisy
    labels flattens the softmax toward the noisy-label distribution and ruins clean test ECE; T fitted
    on the clean labels stays near 1 and keeps the test set calibrated."""
    z, y = _calibrated(6000, 10, 5)
    val, test = slice(0, 2000), slice(2000, None)
    noisy = _flip(y[val], 10, 0.6, 1)
    out = summarize(z[val], noisy, z[test], y[test], y[val], default_calibrators())
    assert out["temperature_clean"] == pytest.approx(1.0, abs=0.1)
    assert out["temperature_noisy"] > 3.0
    assert out["test_ece"] < 0.04 and out["test_ece_ts_clean"] < 0.04
    assert out["test_ece_ts_noisy"] > 0.25
    assert out["test_gap_ts_noisy"] < -0.25  # under-confident after the noisy fit
    assert out["val_acc"] < 0.5 < out["val_clean_acc"]


def test_summarize_without_clean_labels_gives_equal_views():
    z, y = _calibrated(600, 10, 6)
    out = summarize(2.0 * z[:200], y[:200], 2.0 * z[200:], y[200:], None, default_calibrators())
    assert out["temperature_noisy"] == out["temperature_clean"]
    assert out["test_ece_ts_noisy"] == out["test_ece_ts_clean"]
    assert out["val_acc"] == out["val_clean_acc"]


def test_summarize_top5_and_empty_validation():
    z, y = _calibrated(300, 20, 4)
    out = summarize(z[:0], y[:0], z, y, y[:0], default_calibrators())
    assert 0 <= out["test_acc"] <= out["test_top5_acc"] <= 1
    assert out["temperature_noisy"] == out["temperature_clean"] == 1.0
    assert "val_nll" not in out and "val_clean_nll" not in out
    assert out["test_nll_ts_noisy"] == pytest.approx(out["test_nll"])
    assert not math.isnan(out["test_ece_classwise"])

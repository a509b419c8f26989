"""SmoothECE: lossbench's figures equal relplot's (the authors' package) on fixed inputs, plus cases
worked by hand, and a missing relplot costs the summary its SmoothECE keys, not the run."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from lossbench.calibrate import default_calibrators
from lossbench.metrics import smooth

relplot = pytest.importorskip("relplot", reason="pip install relplot==1.0.3")

P = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.65, 0.25], [0.05, 0.05, 0.9], [0.3, 0.55, 0.15], [0.72, 0.18, 0.1],
                  [0.4, 0.35, 0.25], [0.2, 0.2, 0.6], [0.5, 0.1, 0.4]], dtype=torch.float64)
Y = torch.tensor([0, 2, 2, 1, 1, 0, 2, 2])


def test_top_label_smooth_ece_is_relplots_on_confidence_and_correctness():
    conf = np.array([0.7, 0.65, 0.9, 0.55, 0.72, 0.4, 0.6, 0.5])
    correct = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    value, sigma = smooth.smooth_ece(P, Y)
    expected, width = relplot.smECE(conf, correct, return_width=True)
    assert value == pytest.approx(float(expected), abs=1e-12) and sigma == pytest.approx(width)
    # the same through relplot's own multiclass helper (logits in, confidences out)
    f, y = relplot.multiclass_logits_to_confidences(P.log().numpy(), Y.numpy())
    assert value == pytest.approx(float(relplot.smECE(f, y)), abs=1e-12)


def test_classwise_is_the_mean_of_one_vs_rest_smooth_eces():
    onehot = np.eye(3)[Y.numpy()]
    expected = np.mean([relplot.smECE(P[:, k].numpy(), onehot[:, k]) for k in range(3)])
    assert smooth.smooth_ece_classwise(P, Y) == pytest.approx(float(expected), abs=1e-12)


def test_by_hand_constant_predictions():
    # every prediction 0.9, every outcome 0: the smoothed residual is 0.9 everywhere, so smECE = 0.9
    value, _ = smooth.smooth_ece_binary(np.full(500, 0.9), np.zeros(500))
    assert value == pytest.approx(0.9, abs=2e-3)
    # predictions 0.5 with outcomes half 1: residuals cancel, smECE = 0
    value, _ = smooth.smooth_ece_binary(np.full(500, 0.5), np.tile([0.0, 1.0], 250))
    assert value == pytest.approx(0.0, abs=1e-3)


def test_smooth_curve_is_relplots_kernel_regression():
    from relplot.estimators import KernelSmoother
    from relplot.kernels import ReflectedGaussianKernel

    curve = smooth.smooth_reliability(P, Y, mesh_points=11)
    conf = P.max(1).values.numpy()
    correct = (P.argmax(1) == Y).double().numpy()
    kernel = ReflectedGaussianKernel(curve["sigma"])
    mesh = np.linspace(0, 1, 11).reshape(-1, 1)
    mu = KernelSmoother(kernel).fit(conf.reshape(-1, 1), correct).predict(mesh)
    assert curve["mu"] == pytest.approx(mu.tolist(), abs=1e-6)
    assert len(curve["density"]) == 11


def test_missing_relplot_leaves_smooth_keys_out_with_the_pip_hint(monkeypatch, caplog):
    import builtins

    from lossbench.metrics import summarize

    real_import = builtins.__import__

    def no_relplot(name, *args, **kwargs):
        if name == "relplot" or name.startswith("relplot."):
            raise ImportError("No module named 'relplot'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_relplot)
    monkeypatch.setattr(smooth, "_warned", False)
    logits = P.log()
    with caplog.at_level(logging.WARNING, logger="lossbench"):
        out = summarize(logits, Y, logits, Y, None, default_calibrators(), smoothed=True)
    assert "test_ece" in out and "test_smece" not in out and "smooth" not in out["test_reliability"]
    assert "pip install relplot==1.0.3" in caplog.text
    with pytest.raises(ImportError, match="pip install relplot==1.0.3"):
        smooth.smooth_ece(P, Y)


def test_summarize_leaves_smooth_ece_out_unless_asked_and_never_touches_relplot(monkeypatch, caplog):
    from lossbench.metrics import summarize

    def forbidden():
        raise AssertionError("relplot was consulted")

    monkeypatch.setattr(smooth, "relplot_available", forbidden)
    with caplog.at_level(logging.WARNING, logger="lossbench"):
        out = summarize(P.log(), Y, P.log(), Y, None, default_calibrators())
    assert "test_ece" in out and not any("smece" in k for k in out)
    assert "smooth" not in out["test_reliability"] and caplog.text == ""

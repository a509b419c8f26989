"""Calibrators in the end-of-run summary: the names of NAMES.md for every calibrator and view, fit time and
size, and a trained model evaluated with every calibrator (views through the model)."""

from __future__ import annotations

import json

import pytest
import torch
from hydra import compose, initialize_config_module

from lossbench.calibrate import CALIBRATORS, build_calibrators
from lossbench.metrics import CALIBRATION_KEYS, summarize


def _data(n: int = 900, c: int = 10, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, c, generator=g) * 2
    y = torch.multinomial(z.softmax(1), 1, generator=g).squeeze(1)
    noisy = torch.where(torch.rand(n, generator=g) < 0.4, torch.randint(0, c, (n,), generator=g), y)
    views = torch.stack([3 * z + torch.randn(z.shape, generator=g) for _ in range(3)])
    return 3 * z, y, noisy, views


def test_summary_names_for_every_calibrator_and_view():
    z, y, noisy, views = _data()
    val, test = slice(0, 300), slice(300, None)
    calibrators = [CALIBRATORS.get(n)() for n in ("temperature", "vector", "matrix", "dirichlet", "ca")]
    out = summarize(z[val], noisy[val], z[test], y[test], y[val], calibrators,
                    {"ca": views[:, val]}, {"ca": views[:, test]})
    assert out["calibrators"] == ["ts", "vs", "ms", "dir", "ca"]
    for key in out["calibrators"]:
        assert out[f"{key}_params"] == calibrators[out["calibrators"].index(key)].num_params(10)
        for view in ("noisy", "clean"):
            for m in CALIBRATION_KEYS:
                assert f"test_{m}_{key}_{view}" in out, (m, key, view)
            assert out[f"{key}_fit_seconds_{view}"] >= 0
            assert isinstance(out[f"test_reliability_{key}_{view}"], dict)
    assert {"temperature_noisy", "temperature_clean", "dir_reg_lambda_clean", "ca_temperature_mean_noisy",
            "val_nll_ts_noisy", "val_clean_ece_dir_clean"} <= out.keys()
    assert out["ts_params"] == 1 and out["vs_params"] == 20 and out["ms_params"] == out["dir_params"] == 110
    # the clean fit beats the noisy one on the clean test labels, for every calibrator
    for key in out["calibrators"]:
        assert out[f"test_nll_{key}_clean"] < out[f"test_nll_{key}_noisy"], key
    json.dumps(out)


def test_a_calibrator_the_validation_split_cannot_support_is_skipped():
    z, y, noisy, _ = _data(200)
    calibrators = [CALIBRATORS.get("temperature")(), CALIBRATORS.get("matrix")()]
    out = summarize(z[:0], y[:0], z, y, y[:0], calibrators)
    assert out["temperature_noisy"] == 1.0  # an empty validation split keeps T = 1
    assert "test_ece_ms_noisy" not in out and out["ms_params"] == 110


def test_a_trained_model_with_every_calibrator():
    from hydra.utils import instantiate

    from lossbench.lifecycle.builders import build_data, build_loss, build_model
    from lossbench.reweight.base import Reweighter
    from lossbench.train.final_eval import evaluate_model
    from lossbench.train.trainer import Trainer

    with initialize_config_module(config_module="lossbench.conf", version_base="1.3"):
        cfg = compose("config", overrides=["noise=sym40", "model.hidden=[32]",
                                           "calibrator=[temperature,vector,matrix,dirichlet,ca]"])
    calibrators = build_calibrators(cfg.calibrator)
    assert [c.key for c in calibrators] == ["ts", "vs", "ms", "dir", "ca"]
    trainer = Trainer(epochs=2, progress="none", checkpoint_every=0, device="cpu")
    _, split, _ = build_data(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, trainer, split)
    loss = build_loss(cfg.loss, split.num_classes, len(split.y_train))
    optimizer = instantiate(cfg.optim)(model.parameters())
    trainer.fit(model, loss, Reweighter(), optimizer, instantiate(cfg.scheduler)(optimizer), split, 0)
    out = evaluate_model(trainer, model, split, calibrators)
    assert out["ca_views_seconds"] > 0
    for key in ("ts", "vs", "ms", "dir", "ca"):
        assert 0 <= out[f"test_ece_{key}_clean"] <= 1
    assert out["test_acc"] == pytest.approx(out["test_acc"])


def test_the_default_run_fits_temperature_scaling_only():
    with initialize_config_module(config_module="lossbench.conf", version_base="1.3"):
        assert [c.key for c in build_calibrators(compose("config").calibrator)] == ["ts"]
        assert build_calibrators(compose("config", overrides=["calibrator=none"]).get("calibrator")) == []


def test_a_run_refuses_matrix_scaling_on_too_small_a_validation_split_before_training(run_once):
    out, summary, proc = run_once("calibrator=[temperature,matrix]", "dataset.val_size=50", check=False)
    assert proc.returncode == 2 and summary is None
    assert ("lossbench: error: calibrator matrix fits 110 parameters for 10 classes and needs at least 110 "
            "validation samples; the validation split has 50") in proc.stderr
    assert not (out / "metrics.jsonl").exists()  # refused before the first epoch

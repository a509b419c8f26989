"""The two validation views (noisy, clean): names, words, and one training run that records both."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from lossbench.metrics import CALIBRATION_KEYS, RENAMED, accuracy, metric_view, renamed_hint, view_text
from lossbench.reweight.base import Reweighter


def test_every_renamed_key_names_both_views():
    assert set(RENAMED) >= {"temperature", "best_val_acc", "best_val_epoch", "test_acc_at_best_val",
                            "test_reliability_ts", *(f"test_{k}_ts" for k in CALIBRATION_KEYS)}
    for old, (noisy, clean) in RENAMED.items():
        assert metric_view(noisy) == "noisy" and metric_view(clean) == "clean"
        hint = renamed_hint(old)
        assert noisy in hint and clean in hint and "practitioner" in hint and "oracle" in hint
    assert renamed_hint("test_ece") is None


@pytest.mark.parametrize("name, words", [
    ("test_ece_ts_noisy", "fitted on the noisy validation labels"),
    ("temperature_clean", "fitted on the clean validation labels: the oracle"),
    ("best_val_acc_noisy", "selected on the noisy validation labels"),
    ("test_acc_at_best_val_clean", "selected on the clean validation labels"),
    ("val_clean_acc", "scored on the clean validation labels"),
    ("val_ece", "scored on the noisy validation labels"),
    ("val_clean_ece_ts_clean", "temperature scaling fitted on the clean validation labels"),
    ("test_ece_dir_noisy", "Dirichlet calibration fitted on the noisy validation labels"),
    ("test_smece_ca_clean", "correctness-aware calibration fitted on the clean validation labels"),
    ("ms_fit_seconds_noisy", "matrix scaling fitted on the noisy"),
    ("dir_reg_lambda_clean", "Dirichlet calibration fitted on the clean"),
])
def test_view_text(name, words):
    assert words in view_text(name)


def test_view_text_none_for_figures_without_validation():
    for name in ("test_acc", "test_ece", "final_memorization", "train_clean_acc"):
        assert view_text(name) is None and metric_view(name) is None


def test_a_noisy_run_records_both_views_per_epoch_and_in_the_summary():
    from lossbench.lifecycle.builders import build_data, build_loss, build_model
    from lossbench.lifecycle.run import _history_figures
    from lossbench.train.final_eval import evaluate_model
    from lossbench.train.trainer import Trainer

    with initialize_config_module(config_module="lossbench.conf", version_base="1.3"):
        cfg = compose("config", overrides=["noise=sym60", "model.hidden=[32]"])
    trainer = Trainer(epochs=3, progress="none", checkpoint_every=0, device="cpu")
    _, split, _ = build_data(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, trainer, split)
    loss = build_loss(cfg.loss, split.num_classes, len(split.y_train))
    optimizer = instantiate(cfg.optim)(model.parameters())
    scheduler = instantiate(cfg.scheduler)(optimizer)
    history = trainer.fit(model, loss, Reweighter(), optimizer, scheduler, split, 0)
    assert (split.y_val_noisy != split.y_val).double().mean() > 0.4
    for record in history:
        for key in ("val_acc", "val_nll", "val_brier", "val_ece",
                    "val_clean_acc", "val_clean_nll", "val_clean_brier", "val_clean_ece"):
            assert key in record, key
    from lossbench.data.transforms import BatchTransform

    logits = trainer.predict(model, split.x_val, BatchTransform(split))
    assert history[-1]["val_clean_acc"] == accuracy(logits, split.y_val)
    assert history[-1]["val_acc"] == accuracy(logits, split.y_val_noisy)

    summary = {**evaluate_model(trainer, model, split), **_history_figures(history)}
    assert summary["val_clean_acc"] == history[-1]["val_clean_acc"]
    best = max(history, key=lambda r: (r["val_clean_acc"], -r["epoch"]))
    assert summary["best_val_epoch_clean"] == best["epoch"]
    assert summary["test_acc_at_best_val_clean"] == best["test_acc"]
    assert summary["temperature_noisy"] != summary["temperature_clean"]
    assert not set(RENAMED) & summary.keys()


def test_a_removed_objective_is_refused_before_any_job():
    from lossbench.core.errors import ConfigError
    from lossbench.lifecycle.precheck import check_overrides
    from lossbench.lifecycle.validation import check_config

    problem = check_overrides(["objective=best_val_acc_noisy,best_val_acc"], multirun=True)
    assert problem.startswith("objective=best_val_acc: 'best_val_acc' is recorded once per validation view: "
                              "best_val_acc_noisy (selected on the noisy validation labels")
    assert check_overrides(["objective=test_ece_ts_clean"]) is None
    with initialize_config_module(config_module="lossbench.conf", version_base="1.3"):
        assert compose("config").objective == "best_val_acc_noisy"
        cfg = compose("config", overrides=["objective=test_acc_at_best_val"])
    with pytest.raises(ConfigError, match="test_acc_at_best_val_noisy .* or test_acc_at_best_val_clean"):
        check_config(cfg)  # a preset that sets an old name is refused inside the job

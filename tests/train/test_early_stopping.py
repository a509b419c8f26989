"""Early stopping on a validation figure: off by default, on the noisy or the clean validation labels,
recorded in the summary (issue 26, item 7)."""

from __future__ import annotations

import pytest

from lossbench.train.early_stopping import EarlyStopping


def _history(values, key="val_acc"):
    return [{"epoch": i + 1, key: v} for i, v in enumerate(values)]


def test_stops_after_patience_epochs_without_improvement():
    stop = EarlyStopping(patience=2)
    assert not stop.should_stop(_history([0.5, 0.6, 0.6]))
    assert stop.should_stop(_history([0.5, 0.6, 0.6, 0.59]))
    assert stop.best(_history([0.5, 0.6, 0.6, 0.59])) == (2, 0.6)  # ties keep the earlier epoch


def test_min_delta_decides_what_counts_as_an_improvement():
    history = _history([0.50, 0.505, 0.509])
    assert EarlyStopping(patience=2, min_delta=0.01).should_stop(history)
    assert not EarlyStopping(patience=2, min_delta=0.001).should_stop(history)


def test_a_loss_like_figure_is_minimised_and_the_view_picks_the_labels():
    stop = EarlyStopping(patience=1, metric="nll", view="clean")
    assert stop.monitor == "val_clean_nll" and stop.mode == "min"
    assert stop.should_stop(_history([0.9, 0.8, 0.85], key="val_clean_nll"))
    assert not stop.should_stop(_history([0.9, 0.8, 0.7], key="val_clean_nll"))


@pytest.mark.parametrize(("settings", "fragment"), [
    ({"patience": -1}, "trainer.early_stopping.patience must be"),
    ({"patience": 2, "metric": "f1"}, "trainer.early_stopping.metric must be one of acc, nll, brier, ece"),
    ({"patience": 2, "view": "oracle"}, "trainer.early_stopping.view must be one of noisy, clean"),
    ({"patience": 2, "min_delta": -0.1}, "trainer.early_stopping.min_delta must be"),
    ({"patience": 2, "wait": 3}, "unknown config key 'trainer.early_stopping.wait'"),
])
def test_bad_settings_are_one_line(settings, fragment):
    from lossbench.core.errors import ConfigError
    from lossbench.train.early_stopping import check_settings

    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        check_settings(settings)


def test_a_run_that_stops_improving_stops_and_says_so(run_once):
    # a learning rate too small to move the weights: validation accuracy never improves after epoch 1
    _, summary, proc = run_once("optim.lr=1e-12", "trainer.epochs=10", "trainer.early_stopping.patience=2")
    assert summary["status"] == "completed" and summary["epochs"] == 3
    assert summary["early_stopping"] == {"monitor": "val_acc", "mode": "max", "patience": 2, "min_delta": 0.0,
                                         "stopped_epoch": 3, "best_epoch": 1}
    assert "early stopping" in proc.stdout + proc.stderr


def test_early_stopping_is_off_by_default(run_once):
    _, summary, _ = run_once("optim.lr=1e-12", "trainer.epochs=4")
    assert summary["epochs"] == 4 and "early_stopping" not in summary
    assert summary["config"]["trainer"]["early_stopping"]["patience"] is None


def test_packing_runs_early_stopping_and_capped_runs_alone():
    from lossbench.lifecycle.packs import unpackable

    base = {"trainer": {"early_stopping": {"patience": None}, "limit_train_batches": None}}
    assert unpackable(base) is None
    stopping = {"trainer": {"early_stopping": {"patience": 3}, "limit_train_batches": None}}
    assert "early stopping" in unpackable(stopping)
    capped = {"trainer": {"early_stopping": {"patience": None}, "limit_train_batches": 2}}
    assert "limit_train_batches" in unpackable(capped)

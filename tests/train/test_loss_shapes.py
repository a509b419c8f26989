"""The loss shapes (issue 20) with main's lifecycle and adversarial training: a stop inside an epoch
resumes bit for bit for a set-level loss (its own batches, of a size other than trainer.batch_size)
and for a trainable loss (its parameters and their optimizer state in the partial checkpoint);
adversarial methods that need per-sample values or logits are refused with set/batch-level and
head-only losses, before training, by the config check as by the step."""

from __future__ import annotations

import signal

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from lossbench.adversarial.training import ADVERSARIAL
from lossbench.core import signals
from lossbench.core.errors import ConfigError
from lossbench.lifecycle.validation import check_config
from lossbench.losses import LOSSES
from lossbench.reweight.base import NoReweighting
from lossbench.train.checkpoint import load_checkpoint
from lossbench.train.objective import check_pairing, parameter_groups
from lossbench.train.trainer import Trainer


@pytest.fixture(scope="module")
def digits():
    from lossbench.data import DATASETS

    return DATASETS.get("digits")()


def _fit(split, loss_name, path, stop_at_call=None, monkeypatch=None, **loss_kwargs):
    from lossbench.models.mlp import MLP

    torch.manual_seed(0)
    model = MLP(split.input_shape, split.num_classes, hidden=[16])
    loss = LOSSES.get(loss_name)(**loss_kwargs)
    opt = torch.optim.SGD(parameter_groups(model, loss), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
    trainer = Trainer(epochs=2, device="cpu", progress="none", checkpoint_every=1, batch_size=64)
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return signal.SIGTERM if stop_at_call is not None and calls["n"] >= stop_at_call else None

    monkeypatch.setattr(signals, "stop_requested", stop)
    history = trainer.fit(model, loss, NoReweighting(), opt, sched, split, seed=0, checkpoint_path=path)
    return history, model, loss


def _strip(records):
    return [{k: v for k, v in r.items() if k not in ("seconds", "train_seconds", "throughput")}
            for r in records]


@pytest.mark.parametrize(("name", "kwargs"), [("oko", {"k": 1}), ("legendretron", {"num_classes": 10,
                                                                                   "lr": 0.05})])
def test_stop_inside_an_epoch_resumes_bit_for_bit(digits, tmp_path, monkeypatch, name, kwargs):
    ref_history, ref_model, ref_loss = _fit(digits, name, tmp_path / "ref.pt", monkeypatch=monkeypatch,
                                            **kwargs)
    path = tmp_path / "run.pt"
    # stop_requested is called once per batch: this call is the third batch boundary of epoch 2
    with pytest.raises(signals.Interrupted):
        _fit(digits, name, path, stop_at_call=len_batches(digits, name) + 3, monkeypatch=monkeypatch,
             **kwargs)
    state = load_checkpoint(path)
    assert state["epoch"] == 0 and state["partial"]["next"] > 0, "a checkpoint inside epoch 2"
    if name == "oko":  # sets of 3: batches of 63 samples, whose sizes the checkpoint records
        assert set(state["partial"]["sizes"][:-1]) == {63}
        assert state["partial"]["next"] == 2 * 63
    else:  # the loss's parameters and their optimizer state are in the partial checkpoint
        assert set(state["loss"]) == set(ref_loss.state_dict())
        assert len(state["optimizer"]["param_groups"]) == 2
    history, model, loss = _fit(digits, name, path, monkeypatch=monkeypatch, **kwargs)
    assert _strip(history) == _strip(ref_history)
    for a, b in zip(ref_model.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(ref_loss.state_dict().values(), loss.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def len_batches(split, name):
    """Batches in one epoch of ``_fit``: OKO's sampler (n // 3 sets, 21 per batch) or the permutation."""
    n = len(split.y_train)
    if name == "oko":
        return -(-(n // 3) // 21)
    return -(-n // 64)


@pytest.mark.parametrize(("loss", "method", "words"), [
    ("oko", "pgd_at", "adversarial=pgd_at attacks per-sample losses, and loss 'oko' has none .*set"),
    ("anyloss", "trades", "adversarial=trades attacks per-sample losses, .*'anyloss' .*batch"),
    ("cce", "pgd_at", "adversarial=pgd_at reads the logits, which loss 'cce' never forms"),
])
def test_adversarial_methods_refuse_losses_without_what_they_need(loss, method, words):
    with pytest.raises(ValueError, match=words + ".*use adversarial=none"):
        check_pairing(LOSSES.get(loss)(), NoReweighting(), ADVERSARIAL.get(method)())
    check_pairing(LOSSES.get(loss)(), NoReweighting(), ADVERSARIAL.get("none")())
    check_pairing(LOSSES.get("ce")(), NoReweighting(), ADVERSARIAL.get(method)())


@pytest.mark.parametrize(("overrides", "words"), [
    (["loss=oko", "reweight=loss_based"], "reweight=loss_based weighs or corrects per-sample losses"),
    (["loss=anyloss", "adversarial=pgd_at"], "adversarial=pgd_at attacks per-sample losses"),
    (["loss=cce", "adversarial=trades"], "adversarial=trades reads the logits"),
])
def test_the_config_check_refuses_the_pairing_before_any_data(overrides, words):
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="lossbench.conf", version_base="1.3"):
        cfg = compose("config", overrides=["dataset=digits", *overrides])
    with pytest.raises(ConfigError, match=words):
        check_config(cfg)
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="lossbench.conf", version_base="1.3"):
        cfg = compose("config", overrides=["dataset=digits", overrides[0]])
    assert check_config(cfg)["loss"]["_target_"].startswith("lossbench.losses.")

"""trainer.save_weights: model_final.pt and the validation-selected model_best.pt (weights_only=True)."""

from __future__ import annotations

import pytest
import torch

from lossbench.core.io import append_jsonl
from lossbench.models.mlp import MLP
from lossbench.train.trainer import Trainer
from lossbench.train.weights import (
    WEIGHT_FILES,
    BestWeights,
    kept,
    load_state_dict,
    save_state_dict,
    weights_summary,
)


def model_with(value: float) -> MLP:
    model = MLP((4,), 3, hidden=(5,), batch_norm=True)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    return model


def test_state_dict_round_trip_with_weights_only(tmp_path):
    model = model_with(0.25)
    model.train()(torch.randn(6, 4))  # batch-norm statistics are buffers: saved too
    save_state_dict(model, tmp_path / "m.pt")
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert set(raw) == set(model.state_dict()) and all(t.device.type == "cpu" for t in raw.values())
    back = model_with(0.0)
    back.load_state_dict(load_state_dict(tmp_path / "m.pt"))
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left


def test_best_weights_keep_the_first_best_validation_epoch(tmp_path):
    model = model_with(0.0)
    best = BestWeights(model, tmp_path)
    best.start(4)
    for epoch, val_acc in [(1, 0.5), (2, 0.7), (3, 0.7), (4, 0.6)]:
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(epoch))
        best.epoch({"epoch": epoch, "val_acc": val_acc})
    assert best.best_epoch == 2  # ties go to the earliest epoch, as best_val_epoch does
    saved = load_state_dict(tmp_path / WEIGHT_FILES["best"])
    assert torch.all(saved["head.weight"] == 2.0)


def test_resumed_best_weights_continue_from_the_epochs_done(tmp_path):
    for epoch, val_acc in [(1, 0.5), (2, 0.8), (3, 0.9)]:  # epoch 3 was logged after the checkpoint
        append_jsonl(tmp_path / "metrics.jsonl", {"epoch": epoch, "val_acc": val_acc})
    save_state_dict(model_with(2.0), tmp_path / WEIGHT_FILES["best"])
    best = BestWeights(model_with(9.0), tmp_path)
    best.start(4, start_epoch=2)
    assert (best.best, best.best_epoch) == (0.8, 2)
    best.epoch({"epoch": 3, "val_acc": 0.75})  # not better than epoch 2: the file stays
    assert torch.all(load_state_dict(tmp_path / WEIGHT_FILES["best"])["head.weight"] == 2.0)
    fresh = BestWeights(model_with(1.0), tmp_path)
    fresh.start(4)  # a run from scratch drops an old file
    assert not (tmp_path / WEIGHT_FILES["best"]).exists()


@pytest.mark.parametrize(("setting", "files"), [("final", ("final",)), ("best", ("best",)),
                                                ("both", ("final", "best")), ("none", ())])
def test_which_files_each_setting_keeps(tmp_path, setting, files):
    assert kept(setting) == files
    model = model_with(1.0)
    best = BestWeights(model, tmp_path) if "best" in files else None
    if best:
        best.start(1)
        best.epoch({"epoch": 1, "val_acc": 0.5})
    out = weights_summary(setting, tmp_path, model, best, finished=True)
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == sorted(WEIGHT_FILES[f] for f in files)
    assert ("weights_final" in out) == ("final" in files)
    assert out.get("weights_best_epoch") == (1 if "best" in files else None)


def test_diverged_run_keeps_no_final_weights(tmp_path):
    assert weights_summary("final", tmp_path, model_with(1.0), None, finished=False) == {}
    assert not list(tmp_path.iterdir())


def test_unknown_setting_is_refused():
    with pytest.raises(ValueError, match="save_weights 'last'; known: final, best, both, none$"):
        Trainer(device="cpu", save_weights="last")

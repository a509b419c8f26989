"""Saved model weights (``trainer.save_weights``): the final model and the validation-selected one.

Each file is a plain ``state_dict`` of CPU tensors written atomically, so
``model.load_state_dict(torch.load(path, weights_only=True))`` reads it back
into a model built from the run's config (``lossbench evaluate RUN_DIR`` does
exactly that). A loss with state of its own (a trainable loss: LegendreTron's
link) is saved beside it, from the same epoch, as ``loss_final.pt`` /
``loss_best.pt``, read back with ``loss.load_state_dict``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lossbench.core.io import read_jsonl, write_with_atomic
from lossbench.core.sink import Sink

SAVE_WEIGHTS = ("final", "best", "both", "none")
WEIGHT_FILES = {"final": "model_final.pt", "best": "model_best.pt"}
LOSS_FILES = {"final": "loss_final.pt", "best": "loss_best.pt"}
# The validation figure "best" selects on: accuracy on the noisy validation labels (what a
# practitioner can select on); ties go to the earliest epoch, as in the summary's best-epoch figures.
SELECT_ON = "val_acc"


def check_save_weights(value: object) -> str:
    if value not in SAVE_WEIGHTS:
        raise ValueError(f"unknown trainer.save_weights '{value}'; known: {', '.join(SAVE_WEIGHTS)}")
    return str(value)


def kept(setting: str) -> tuple[str, ...]:
    """Which weight files ``trainer.save_weights=setting`` keeps: ("final",), ("best",), both or none."""
    check_save_weights(setting)
    return {"final": ("final",), "best": ("best",), "both": ("final", "best"), "none": ()}[setting]


def save_state_dict(model: nn.Module, path: Path) -> None:
    """``model``'s state_dict as CPU tensors, written atomically with the user's umask
    (``lossbench.core.io.write_with_atomic``).

    Each tensor is copied into storage of its own (a packed model's member holds views of the
    pack's stacked tensors, and ``torch.save`` of a view writes the whole storage)."""
    path = Path(path)
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    write_with_atomic(path, lambda f: torch.save(state, f))


def has_state(loss: nn.Module | None) -> bool:
    """Whether ``loss`` is trainable (has parameters of its own, which a saved model lacks)."""
    return bool(getattr(loss, "trainable", False))


def save_weights(model: nn.Module, loss: nn.Module | None, out_dir: Path, which: str) -> None:
    """model_<which>.pt, and loss_<which>.pt when the loss has state of its own."""
    if has_state(loss):
        save_state_dict(loss, Path(out_dir) / LOSS_FILES[which])
    save_state_dict(model, Path(out_dir) / WEIGHT_FILES[which])


def load_state_dict(path: Path, device: torch.device | str = "cpu") -> dict:
    """A saved state_dict, read with ``weights_only=True``."""
    return torch.load(path, map_location=device, weights_only=True)


class BestWeights(Sink):
    """Keeps ``model_best.pt``: the model after the epoch with the highest ``val_acc`` so far.

    A resumed run continues from the best of the epochs it already has (read from
    metrics.jsonl) when its model_best.pt survived; ``best_epoch`` is the epoch
    whose model the file holds.
    """

    def __init__(self, model: nn.Module, out_dir: Path, loss: nn.Module | None = None) -> None:
        self.model = model
        self.loss = loss
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / WEIGHT_FILES["best"]
        self.best = float("-inf")
        self.best_epoch: int | None = None

    def start(self, num_epochs: int, start_epoch: int = 0) -> None:
        loss_path = self.out_dir / LOSS_FILES["best"]
        if start_epoch == 0 or not self.path.exists() or (has_state(self.loss) and not loss_path.exists()):
            self.path.unlink(missing_ok=True)
            loss_path.unlink(missing_ok=True)
            return
        done = [r for r in read_jsonl(self.out_dir / "metrics.jsonl")
                if isinstance(r.get("epoch"), int) and r["epoch"] <= start_epoch
                and isinstance(r.get(SELECT_ON), (int, float))]
        if done:
            best = max(done, key=lambda r: (r[SELECT_ON], -r["epoch"]))
            self.best, self.best_epoch = float(best[SELECT_ON]), int(best["epoch"])

    def epoch(self, record: dict) -> None:
        value = record.get(SELECT_ON)
        if isinstance(value, (int, float)) and value > self.best:
            save_weights(self.model, self.loss, self.out_dir, "best")
            self.best, self.best_epoch = float(value), int(record["epoch"])


def weights_summary(setting: str, out_dir: Path, model: nn.Module, best: BestWeights | None,
                    finished: bool, loss: nn.Module | None = None) -> dict:
    """Write model_final.pt (and loss_final.pt for a loss with state) for a run that finished with
    finite weights, and say in the summary which files the run kept: ``weights_final``,
    ``weights_best``, ``weights_best_epoch`` and ``loss_weights_final`` / ``loss_weights_best``."""
    out: dict = {}
    if "final" in kept(setting) and finished:
        save_weights(model, loss, out_dir, "final")
        out["weights_final"] = WEIGHT_FILES["final"]
        if has_state(loss):
            out["loss_weights_final"] = LOSS_FILES["final"]
    if best is not None and best.best_epoch is not None and best.path.exists():
        out["weights_best"] = WEIGHT_FILES["best"]
        out["weights_best_epoch"] = best.best_epoch
        if has_state(best.loss):
            out["loss_weights_best"] = LOSS_FILES["best"]
    return out

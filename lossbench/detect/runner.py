"""Running a detector inside a run: its context from the run's pieces, and a cache for resumes."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from lossbench.data.split import Split
from lossbench.data.transforms import BatchTransform
from lossbench.detect.base import DetectContext, Detection, Detector

CACHE = "detect.npz"


def train_subset(split: Split, positions: Tensor) -> Split:
    """The split restricted to the training samples at ``positions`` (no validation or test set)."""
    empty_x = split.x_train[:0]
    empty_y = split.y_train[:0]
    return replace(
        split,
        x_train=split.x_train[positions],
        y_train=split.y_train[positions],
        y_train_noisy=split.y_train_noisy[positions],
        x_val=empty_x,
        y_val=empty_y,
        y_val_noisy=empty_y,
        x_test=empty_x,
        y_test=empty_y,
    )


def detection_context(
    split: Split,
    seed: int,
    device: torch.device,
    eval_batch: int,
    make_model: Callable[[Split], nn.Module],
    train: Callable[[nn.Module, Split, int], nn.Module],
) -> DetectContext:
    """A DetectContext over the training split: ``make_model(split)`` builds a fresh model of
    the run's architecture, ``train(model, split, epochs)`` fits it with cross-entropy on
    the noisy labels (the run's optimizer at a constant learning rate). Every model it
    builds is initialised from a seed derived from ``seed`` and a counter."""
    transform = BatchTransform(split)
    built = [0]

    def fresh(sub: Split) -> nn.Module:
        built[0] += 1
        torch.manual_seed(int(seed) * 1000 + built[0])
        return make_model(sub)

    @torch.no_grad()
    def outputs(model: nn.Module, x: Tensor, features: bool) -> Tensor:
        model.eval()
        out = []
        for i in range(0, len(x), eval_batch):
            xb = transform(x[i : i + eval_batch], train=False)
            out.append(model(xb, return_features=True)[1] if features else model(xb).softmax(1))
        return torch.cat(out).float()

    def inputs() -> Tensor:
        return torch.cat(
            [
                transform(split.x_train[i : i + eval_batch], train=False).flatten(1)
                for i in range(0, len(split.x_train), eval_batch)
            ]
        )

    def features(epochs: int) -> Tensor:
        all_pos = torch.arange(len(split.y_train), device=split.y_train.device)
        sub = train_subset(split, all_pos)
        model = train(fresh(sub), sub, epochs)
        return outputs(model, split.x_train, features=True)

    def fit_predict(train_pos: Tensor, test_pos: Tensor, epochs: int) -> Tensor:
        sub = train_subset(split, train_pos.to(split.y_train.device))
        model = train(fresh(sub), sub, epochs)
        return outputs(model, split.x_train[test_pos.to(split.x_train.device)], features=False)

    return DetectContext(
        x=split.x_train,
        y=split.y_train_noisy,
        num_classes=split.num_classes,
        seed=seed,
        device=device,
        inputs=inputs,
        features=features,
        fit_predict=fit_predict,
    )


def _save(path: Path, found: Detection) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(
            f,
            flags=found.flags.cpu().numpy(),
            scores=found.scores.cpu().numpy(),
            estimated_rate=found.estimated_rate,
            trainings=found.trainings,
            seconds=found.seconds,
            estimated_T=found.estimated_T if found.estimated_T is not None else np.zeros((0, 0)),
            info_keys=np.array(list(found.info), dtype=str),
            info_values=np.array(list(found.info.values()), dtype=float),
        )
    os.replace(tmp, path)


def _load(path: Path) -> Detection | None:
    try:
        with np.load(path) as z:
            T = z["estimated_T"]
            return Detection(
                flags=torch.as_tensor(z["flags"]),
                scores=torch.as_tensor(z["scores"]),
                estimated_rate=float(z["estimated_rate"]),
                trainings=int(z["trainings"]),
                seconds=float(z["seconds"]),
                estimated_T=T if T.size else None,
                info=dict(zip(z["info_keys"].tolist(), z["info_values"].tolist(), strict=True)),
            )
    except (OSError, KeyError, ValueError):
        return None


def run_detector(
    detector: Detector, ctx: DetectContext, out_dir: Path | None = None, reuse: bool = False,
    save: bool = True,
) -> Detection | None:
    """The detector's result, computed with torch's global RNG left as it was.

    With ``out_dir`` the result is saved to ``detect.npz`` there (unless ``save`` is false:
    the caller saves it later with ``save_detection``); with ``reuse`` (a run resuming from
    its checkpoint) a saved result is read back instead of recomputed.
    """
    path = Path(out_dir) / CACHE if out_dir is not None else None
    if reuse and path is not None and path.exists():
        cached = _load(path)
        if cached is not None:
            return cached
    devices = [ctx.device] if ctx.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        found = detector.detect(ctx)
    if found is not None and path is not None and save:
        _save(path, found)
    return found


def save_detection(out_dir: Path, found: Detection | None) -> None:
    """Write ``found`` to ``detect.npz`` in ``out_dir`` (atomically); nothing for None."""
    if found is not None:
        _save(Path(out_dir) / CACHE, found)

"""The Split: a whole dataset as tensors, ready to move to a device once."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor


@dataclass
class Split:
    """Train / validation / test tensors of one dataset.

    ``x_*`` hold uint8 images [N, C, H, W] or float features [N, D]. ``y_*`` are
    the clean labels; ``y_train_noisy`` / ``y_val_noisy`` are what training sees
    (equal to the clean ones until a noise model is applied). ``train_idx`` and
    ``val_idx`` are positions in the dataset's original training set, so that
    noise defined per original sample (CIFAR-N) lines up.
    ``mean``/``std`` normalize uint8 images per channel after scaling to [0, 1];
    ``augment`` names the on-device batch augmentation (``None`` or ``"crop_flip"``).
    """

    name: str
    num_classes: int
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    train_idx: Tensor
    val_idx: Tensor
    y_train_noisy: Tensor | None = None
    y_val_noisy: Tensor | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    augment: str | None = None
    class_names: list[str] | None = None
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.y_train_noisy is None:
            self.y_train_noisy = self.y_train.clone()
        if self.y_val_noisy is None:
            self.y_val_noisy = self.y_val.clone()

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_train_pool(self) -> int:
        return len(self.train_idx) + len(self.val_idx)

    def pool_labels(self) -> Tensor:
        """Clean labels of the original training set, in its original order."""
        y = torch.empty(self.num_train_pool, dtype=torch.long)
        y[self.train_idx] = self.y_train
        y[self.val_idx] = self.y_val
        return y

    def pool_features(self) -> Tensor:
        """Inputs of the original training set, in its original order."""
        x = torch.empty((self.num_train_pool, *self.input_shape), dtype=self.x_train.dtype)
        x[self.train_idx] = self.x_train
        x[self.val_idx] = self.x_val
        return x

    def with_noisy_pool_labels(self, y_pool_noisy: Tensor) -> Split:
        """A copy whose train/val noisy labels come from pool-ordered labels."""
        return replace(
            self,
            y_train_noisy=y_pool_noisy[self.train_idx].clone(),
            y_val_noisy=y_pool_noisy[self.val_idx].clone(),
        )

    def to(self, device: torch.device | str) -> Split:
        """Every tensor on ``device`` (one copy, done once per run)."""
        moved = {
            k: v.to(device, non_blocking=True)
            for k, v in self.__dict__.items()
            if isinstance(v, Tensor) and k not in ("train_idx", "val_idx")
        }
        return replace(self, **moved)


def carve_validation(
    n: int, val_size: float | int, seed: int
) -> tuple[Tensor, Tensor]:
    """Random (train_idx, val_idx) positions for a training set of size n.

    ``val_size`` is a fraction in [0, 1) or a count; the permutation is seeded
    independently of the run seed so every run of a dataset shares one split.
    """
    n_val = int(round(val_size * n)) if isinstance(val_size, float) and val_size < 1 else int(val_size)
    if not 0 <= n_val < n:
        raise ValueError(f"validation size {val_size} leaves no training data out of {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def check_sizes(split: Split) -> None:
    """Refuse a run's split whose training or test set (or a validation set, unless it is empty) has
    fewer samples than classes: its figures could not say anything about every class."""
    num_classes = split.num_classes
    n_train, n_val, n_test = len(split.y_train), len(split.y_val), len(split.y_test)
    if n_train < num_classes or n_test < num_classes or 0 < n_val < num_classes:
        raise ValueError(
            f"the split leaves {n_train} training, {n_val} validation and {n_test} test samples for "
            f"{num_classes} classes; training and test (and validation, unless it is 0) need at least one "
            "sample per class: lower dataset.test_size or dataset.val_size")


def split_from_pool(
    name: str,
    num_classes: int,
    x_pool: Tensor,
    y_pool: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    val_size: float | int,
    split_seed: int,
    **fields,
) -> Split:
    """A Split whose validation set is carved from the training pool (original order kept).

    ``x_pool``/``y_pool`` are the dataset's whole training set in its original
    order; ``train_idx``/``val_idx`` index into it. ``fields`` are the other
    Split fields (mean, std, augment, class_names, extras).
    """
    train_idx, val_idx = carve_validation(len(y_pool), val_size, split_seed)
    return Split(
        name=name,
        num_classes=num_classes,
        x_train=x_pool[train_idx],
        y_train=y_pool[train_idx],
        x_val=x_pool[val_idx],
        y_val=y_pool[val_idx],
        x_test=x_test,
        y_test=y_test,
        train_idx=train_idx,
        val_idx=val_idx,
        **fields,
    )

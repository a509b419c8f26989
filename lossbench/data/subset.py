"""``dataset.subset``: a stratified, seeded part of any dataset, to smoke-test a protocol in seconds.

The subset is taken after the noise is drawn on the whole training pool, so every kept sample
keeps the noisy label the full run gives it; the kept pool (train + validation) is then
renumbered 0..m-1, so that the run's records (noise.npz, the realized noise rate) describe what
it trained on. ``subset`` is a fraction in (0, 1] of each part or a number of training samples
(validation and test are cut by the same fraction). Each part is drawn per clean class in
proportion to the class's share (largest remainders), from a generator seeded with
``dataset.subset_seed``, so every run of a sweep sees the same samples.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import Tensor

from lossbench.data.split import Split
from lossbench.noise.base import NoisyLabels, realized_transition

# Keys of the dataset node that lossbench handles itself (not arguments of the dataset's builder).
SUBSET_KEYS = ("subset", "subset_seed")


def builder_config(node):
    """The dataset node without SUBSET_KEYS (resolved: ``data_dir: ${data_dir}`` points outside it): what
    its builder is called with."""
    from omegaconf import OmegaConf, open_dict

    node = OmegaConf.create(OmegaConf.to_container(node, resolve=True))
    with open_dict(node):
        for key in SUBSET_KEYS:
            node.pop(key, None)
    return node


def stratified(labels: Tensor, size: int, seed: int) -> Tensor:
    """``size`` positions of ``labels``, sorted, drawn per class in proportion to its count.

    Class c gets floor(size n_c / n) samples, and the classes with the largest remainders one
    more, until ``size`` is reached; within a class the samples come from a seeded permutation.
    """
    n = len(labels)
    if size >= n:
        return torch.arange(n)
    classes, counts = labels.unique(return_counts=True)
    exact = counts.double() * size / n
    take = exact.floor().long()
    remainder = exact - take
    for i in remainder.argsort(descending=True, stable=True)[: size - int(take.sum())]:
        take[i] += 1
    generator = torch.Generator().manual_seed(int(seed))
    kept = []
    for c, k in zip(classes.tolist(), take.tolist(), strict=True):
        members = (labels == c).nonzero().flatten()
        kept.append(members[torch.randperm(len(members), generator=generator)[:k]])
    return torch.cat(kept).sort().values


def _size(subset: float | int, n_train: int) -> float:
    """The fraction of each part that ``subset`` keeps."""
    if isinstance(subset, bool) or not isinstance(subset, (int, float)):
        raise ValueError(f"dataset.subset must be a fraction in (0, 1] or a number of samples, "
                         f"got {subset!r}")
    if isinstance(subset, int):
        if subset > n_train:
            raise ValueError(f"dataset.subset={subset} is more than the dataset's {n_train} training "
                             f"samples; use at most {n_train}, or a fraction")
        return subset / n_train
    return float(subset)


def take_subset(split: Split, noisy: NoisyLabels, subset: float | int, seed: int = 0
                ) -> tuple[Split, NoisyLabels]:
    """The part of ``split`` (with its noisy labels) that ``subset`` keeps: (split, noisy labels)."""
    fraction = _size(subset, len(split.y_train))
    if fraction >= 1.0:
        return split, noisy

    def part(labels: Tensor, offset: int, count: int | None = None) -> Tensor:
        """Validation and test keep the same fraction, and at least one sample a class where they can."""
        if count is None:
            count = max(round(fraction * len(labels)), min(len(labels), split.num_classes))
        return stratified(labels, count, seed + offset)

    kt = part(split.y_train, 0, subset if isinstance(subset, int) else round(fraction * len(split.y_train)))
    kv, ke = part(split.y_val, 1), part(split.y_test, 2)
    original = torch.cat([split.train_idx[kt], split.val_idx[kv]])  # positions in the full pool
    order = original.argsort()
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order))
    small = replace(
        split,
        x_train=split.x_train[kt], y_train=split.y_train[kt], y_train_noisy=split.y_train_noisy[kt],
        x_val=split.x_val[kv], y_val=split.y_val[kv], y_val_noisy=split.y_val_noisy[kv],
        x_test=split.x_test[ke], y_test=split.y_test[ke],
        train_idx=rank[: len(kt)], val_idx=rank[len(kt):],
    )
    pool = original[order]
    y_noisy = noisy.y_noisy[pool]
    clean = small.pool_labels()
    return small, NoisyLabels(
        y_noisy=y_noisy,
        is_noisy=y_noisy != clean,
        expected_T=noisy.expected_T,
        realized_T=realized_transition(clean, y_noisy, split.num_classes),
    )


def describe_cut(config: dict) -> dict:
    """The settings that cut a run down ({} for a full run): summary.json's ``cut_down``."""
    out = {}
    subset = (config.get("dataset") or {}).get("subset")
    if subset is not None:
        out["dataset.subset"] = subset
    limit = (config.get("trainer") or {}).get("limit_train_batches")
    if limit is not None:
        out["trainer.limit_train_batches"] = limit
    return out


def batch_limit(limit: float | int | None, num_batches: int) -> int:
    """How many of an epoch's ``num_batches`` batches ``trainer.limit_train_batches`` keeps
    (a count, or a fraction rounded up)."""
    if limit is None:
        return num_batches
    if isinstance(limit, float):
        return max(1, min(num_batches, math.ceil(limit * num_batches)))
    return max(1, min(num_batches, int(limit)))


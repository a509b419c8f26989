"""scikit-learn's bundled handwritten digits: the default dataset, no files needed."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from lossbench.data.registry import register_dataset
from lossbench.data.split import Split, carve_validation, split_from_pool


@register_dataset("digits")
def digits(test_size: float = 0.25, val_size: float = 0.1, split_seed: int = 0) -> Split:
    """1,797 8x8 grey images of the digits 0-9 (UCI, shipped with scikit-learn).

    Pixels (0..16) are scaled to [0, 1] float features of length 64. The test
    split and then the validation split are carved with ``split_seed``.
    """
    data, target = digits_arrays()
    x = torch.as_tensor(data, dtype=torch.float32) / 16.0
    y = torch.as_tensor(target, dtype=torch.long)
    pool_idx, test_idx = carve_validation(len(y), test_size, split_seed)
    return split_from_pool(
        "digits", 10, x[pool_idx], y[pool_idx], x[test_idx], y[test_idx],
        val_size, split_seed + 1, class_names=[str(i) for i in range(10)],
    )


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(data [1797, 64] of pixels 0..16, target [1797]) as ``sklearn.datasets.load_digits`` gives them.

    Read straight from the file scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``,
    one row per image, the label last), which spares the default run the second or
    so that importing scikit-learn costs; ``load_digits`` itself when the file is not there.
    """
    spec = importlib.util.find_spec("sklearn")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as f:
                table = np.loadtxt(f, delimiter=",")
            return table[:, :-1], table[:, -1].astype(int)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data, bunch.target

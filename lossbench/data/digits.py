"""scikit-learn's bundled handwritten digits: the default dataset, no files needed."""

from __future__ import annotations

import torch

from lossbench.data.registry import register_dataset
from lossbench.data.split import Split, carve_validation, split_from_pool


@register_dataset("digits")
def digits(test_size: float = 0.25, val_size: float = 0.1, split_seed: int = 0) -> Split:
    """1,797 8x8 grey images of the digits 0-9 (UCI, shipped with scikit-learn).

    Pixels (0..16) are scaled to [0, 1] float features of length 64. The test
    split and then the validation split are carved with ``split_seed``.
    """
    from sklearn.datasets import load_digits  # imported here: scikit-learn costs seconds to import

    bunch = load_digits()
    x = torch.as_tensor(bunch.data, dtype=torch.float32) / 16.0
    y = torch.as_tensor(bunch.target, dtype=torch.long)
    pool_idx, test_idx = carve_validation(len(y), test_size, split_seed)
    return split_from_pool(
        "digits", 10, x[pool_idx], y[pool_idx], x[test_idx], y[test_idx],
        val_size, split_seed + 1, class_names=[str(i) for i in range(10)],
    )

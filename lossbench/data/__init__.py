"""Datasets as whole tensor splits. Importing this package registers every dataset."""

from lossbench.data import digits, synthetic, tabular, vision  # noqa: F401  (registration)
from lossbench.data.registry import DATASETS, register_dataset
from lossbench.data.split import Split, carve_validation, split_from_pool
from lossbench.data.vision import DatasetNotFoundError

__all__ = [
    "DATASETS", "DatasetNotFoundError", "Split", "carve_validation", "register_dataset", "split_from_pool",
]

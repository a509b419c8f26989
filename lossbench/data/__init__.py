"""Datasets as whole tensor splits. Importing this package registers every dataset."""

from lossbench.data import digits  # noqa: F401  (registration)
from lossbench.data.registry import DATASETS, register_dataset
from lossbench.data.split import Split, carve_validation

__all__ = ["DATASETS", "Split", "carve_validation", "register_dataset"]

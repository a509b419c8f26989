"""Registry of dataset builders."""

from lossbench.core.registry import Registry

DATASETS: Registry = Registry("dataset")
register_dataset = DATASETS.register

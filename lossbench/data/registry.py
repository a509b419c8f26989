"""Registry of dataset builders."""

from lossbench.registry import Registry

DATASETS: Registry = Registry("dataset")
register_dataset = DATASETS.register

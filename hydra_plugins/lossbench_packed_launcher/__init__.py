"""Hydra launcher plugin: lossbench's packed launcher (hydra/launcher=packed)."""

"""Hydra sweeper plugin (hydra/sweeper=lossbench): the basic sweeper, each job composed once."""

"""Sample reweighting strategies. Importing this package registers every strategy."""

from lossbench.reweight import class_balanced, correction, importance, loss_based  # noqa: F401  (registration)
from lossbench.reweight.base import (
    REWEIGHTS,
    ReweightContext,
    Reweighter,
    normalize_mean_one,
    register_reweight,
)

__all__ = ["REWEIGHTS", "ReweightContext", "Reweighter", "normalize_mean_one", "register_reweight"]

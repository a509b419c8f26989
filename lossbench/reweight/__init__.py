"""Sample reweighting strategies. Importing this package registers every strategy."""

from lossbench.reweight import (  # noqa: F401  (registration)
    adversarial,
    class_balanced,
    cleaning,
    correction,
    importance,
    loss_based,
)
from lossbench.reweight.base import (
    REWEIGHTS,
    ReweightContext,
    Reweighter,
    normalize_mean_one,
    register_reweight,
)

__all__ = ["REWEIGHTS", "ReweightContext", "Reweighter", "normalize_mean_one", "register_reweight"]

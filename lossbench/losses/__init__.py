"""The loss catalogue. Importing this package registers every loss."""

from lossbench.losses import (  # noqa: F401  (registration)
    calibration,
    cce,
    comp_sum,
    ldr,
    learned,
    metric,
    normalized,
    phuber,
    robust,
    sets,
    wrappers,
)
from lossbench.losses.base import FAMILIES, LOSSES, Loss, register_loss

__all__ = ["FAMILIES", "LOSSES", "Loss", "register_loss"]

"""The loss catalogue. Importing this package registers every loss."""

from lossbench.losses import calibration, comp_sum, ldr, normalized, robust, wrappers  # noqa: F401  (registration)
from lossbench.losses.base import FAMILIES, LOSSES, Loss, register_loss

__all__ = ["FAMILIES", "LOSSES", "Loss", "register_loss"]

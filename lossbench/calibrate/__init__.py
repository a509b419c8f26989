"""Post-hoc calibrators: fitted on the validation split (noisy or clean labels), applied to test.

Importing this package registers every calibrator (conf/calibrator/*.yaml
selects them; several per run: ``calibrator=[temperature,vector,dirichlet]``).
"""

from __future__ import annotations

from collections.abc import Mapping

from lossbench.calibrate import correctness, dirichlet, scaling  # noqa: F401  (registration)
from lossbench.calibrate.base import CALIBRATORS, Calibrator, Fitted, register_calibrator
from lossbench.calibrate.scaling import TemperatureScaling


def build_calibrators(node: Mapping | None) -> list[Calibrator]:
    """Calibrators from the ``calibrator`` config node ({name: {_target_, ...}}), in the order listed.

    An empty or missing node gives none. Each entry must name a registered calibrator.
    """
    from hydra.utils import instantiate

    calibrators = []
    for name, entry in (node or {}).items():
        CALIBRATORS.get(str(name))  # an unknown name fails here, listing the known ones
        calibrators.append(instantiate(entry))
    keys = [c.key for c in calibrators]
    if len(set(keys)) != len(keys):
        raise ValueError(f"calibrator: each calibrator may appear once, got {', '.join(keys)}")
    return calibrators


def default_calibrators() -> list[Calibrator]:
    """What a run fits when its config names none: temperature scaling."""
    return [TemperatureScaling()]


__all__ = ["CALIBRATORS", "Calibrator", "Fitted", "build_calibrators", "default_calibrators",
           "register_calibrator"]

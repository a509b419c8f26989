"""lossbench's default sweeper: Hydra's basic sweeper, less the second composition of every job.

Before launching a batch, Hydra's basic sweeper composes every job's config to catch a config that
cannot be composed ("This can be a bit slow for large jobs", its own comment says); its launcher
then composes each job again. ``lossbench run`` has already composed and validated every
combination of the command's overrides before Hydra started (lossbench.lifecycle.precheck), so when the
sweep is exactly those combinations (no ``hydra.sweeper.params`` from a preset, no range or
interval the check could not expand) the sweeper skips that pass: about 0.25 s of CPU a job on a
2-core VM. Otherwise it validates as Hydra does. Imported by Hydra's plugin scan on every start:
no torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper


class CheckedBasicSweeper(BasicSweeper):
    """BasicSweeper that trusts lossbench's check of the same overrides."""

    def sweep(self, arguments: list[str]) -> Any:
        from lossbench.lifecycle.precheck import validated

        self._checked = not self.params and validated(arguments)
        return super().sweep(arguments)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        if getattr(self, "_checked", False):
            return
        super().validate_batch_is_legal(batch)

"""Sweep run folders named by their overrides (``loss=gce,noise=sym60,seed=1``), safe for any value.

The default ``hydra.sweep.subdir`` is ``${lossbench_dirname:${hydra.job.override_dirname},
${hydra.job.num}}``: Hydra's override dirname (the job's overrides, sorted, ``key=value`` joined by
commas) made safe as one folder name. Only the settings the sweep varies are in it: the command
tells Hydra to leave out those with one value (``trainer.epochs=5``, ``+experiment=...``, see
``constant_keys``). A character that is not a letter, a digit or one of ``._-=,+`` is written as
%XX (its UTF-8 bytes; ``%`` itself too), so two different overrides never give one name and no
value can reach another folder; a name longer than MAX_NAME keeps its start and ends with a hash
of the whole. A job with no varying setting gets its number. The numbered layout
(``0``, ``1``, ...) is one setting away: ``hydra.sweep.subdir='${hydra.job.num}'``.
"""

from __future__ import annotations

import hashlib
import re

RESOLVER = "lossbench_dirname"
MAX_NAME = 120
_SAFE = re.compile(r"[A-Za-z0-9._\-=,+]")


def run_dirname(overrides: str, num: object = 0) -> str:
    """The folder name of a sweep job whose override dirname is ``overrides`` (``num``: its number)."""
    text = str(overrides or "")
    if not text:
        return str(num)
    name = "".join(ch if _SAFE.fullmatch(ch) else "".join(f"%{b:02X}" for b in ch.encode()) for ch in text)
    if name in (".", "..") or name.startswith("-"):
        name = "%" + f"{ord(name[0]):02X}" + name[1:]
    if len(name) > MAX_NAME:
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        name = f"{name[:MAX_NAME - 13]}~{digest}"
    return name


def register_resolvers() -> None:
    """Make ``${lossbench_dirname:...}`` known to OmegaConf (idempotent)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, run_dirname)


def constant_keys(overrides: list[str]) -> list[str]:
    """The keys of the task overrides that give one value (Hydra's ``key_or_group``): left out of the
    run folders' names, which then name what varies across the sweep."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides([o for o in overrides if not o.startswith("hydra")])
    except Exception:  # the precheck has said what is wrong
        return []
    return sorted({o.key_or_group for o in parsed if not o.is_sweep_override()})


def exclude_override(overrides: list[str]) -> list[str]:
    """The Hydra override that leaves the constant keys out of the folder names ([] when the command
    sets its own ``exclude_keys``, or has no constant key)."""
    if any(o.split("=", 1)[0].endswith("override_dirname.exclude_keys") for o in overrides):
        return []
    keys = constant_keys(overrides)
    if not keys:
        return []
    quoted = ",".join("'" + k.replace("\\", "\\\\").replace("'", "\\'") + "'" for k in keys)
    return [f"hydra.job.config.override_dirname.exclude_keys=[{quoted}]"]

"""Validate command-line overrides before Hydra starts any job: one clear line per problem."""

from __future__ import annotations

import itertools
import os
from importlib import resources
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

CONFIG_MODULE = "lossbench.conf"
MAX_COMPOSED = 256


def group_options(group: str) -> list[str] | None:
    """The YAML option names of config group ``group`` (None if it is not a group)."""
    folder = resources.files(CONFIG_MODULE).joinpath(group)
    if not folder.is_dir():
        return None
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _one_line(exc: BaseException) -> str:
    cause = exc
    while cause.__cause__ is not None and not str(cause).strip():
        cause = cause.__cause__
    text = str(cause)
    if "is not in struct" in text or "Could not override" in text:
        key = text.split("'")[1] if "'" in text else "?"
        return f"unknown config key '{key}' (to add a new key, write +{key}=VALUE)"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("See https")]
    return " ".join(lines[:3])


def check_overrides(overrides: list[str]) -> str | None:
    """None if every override parses and composes, else a one-line description.

    Sweep overrides (``loss=ce,gce``) are checked job by job (the first
    MAX_COMPOSED combinations; every value's name is checked); Hydra's own
    keys (``hydra.*``, ``hydra/launcher=...``) and search ranges are left to Hydra.
    """
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as exc:  # hydra raises OverrideParseException with a grammar message
        bad = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"malformed override ({bad}); overrides look like key=value, group=option or key=a,b,c"
    base, sweeps = [], []
    for o in parsed:
        key = o.get_key_element()
        if key.lstrip("+~").startswith("hydra"):
            continue
        group = key.lstrip("+~")
        options = group_options(group) if "." not in group and "@" not in group else None
        if o.is_sweep_override():
            try:
                values = list(o.sweep_string_iterator())
            except Exception:  # range/interval searches are for the sweeper
                continue
        else:
            values = None
        for value in values if values is not None else [o.value()]:
            if options is not None and isinstance(value, str) and value not in options:
                return f"unknown {group} '{value}'; known: {', '.join(options)}"
            if group == "objective" and isinstance(value, str):
                from lossbench.metrics.views import renamed_hint  # only then: it imports torch

                if renamed_hint(value):
                    return f"objective={value}: {renamed_hint(value)}"
        if values is None:
            base.append(o.input_line)
        else:
            sweeps.append([f"{key}={v}" for v in values])
    combos = list(itertools.islice(itertools.product(*sweeps), MAX_COMPOSED))
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            for combo in combos:
                compose(config_name="config", overrides=base + list(combo))
    except Exception as exc:
        return _one_line(exc)
    finally:
        GlobalHydra.instance().clear()
    return None


def check_output_dir(overrides: list[str]) -> str | None:
    """None if the run/sweep output folder can be created and written, else why not."""
    target = "outputs"
    for o in overrides:
        key, _, value = o.partition("=")
        if key in ("hydra.run.dir", "hydra.sweep.dir") and value and "$" not in value:
            target = value
    path = Path(target).resolve()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return f"output directory {path} is not writable (nearest existing folder: {existing})"
    return None

"""Optional dependencies (pip extras of lossbench): which choice needs which, and the one-line hint.

The core install holds what every run needs. Launchers, sweepers and model zoos
are extras; a command that picks one that is not installed stops before
anything runs, with the pip command that adds it.
"""

from __future__ import annotations

import importlib.util
import re
from importlib import resources

from lossbench.core.errors import ConfigError

# extra -> (module that must import, pip requirement) ; pyproject.toml's extras hold the same names
EXTRAS: dict[str, tuple[str, str]] = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher>=1.2"),
    "slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher>=1.2"),
    "optuna": ("hydra_plugins.hydra_optuna_sweeper", "hydra-optuna-sweeper>=1.2"),
    "timm": ("timm", "timm>=0.9"),
    "detect": ("cleanlab", "cleanlab>=2.9"),
    "attacks": ("torchattacks", "torchattacks==3.5.1"),
    "calibration": ("relplot", "relplot==1.0.3"),
    "cce": ("cut_cross_entropy", "cut-cross-entropy==25.1.1"),
    "tensorboard": ("tensorboard", "tensorboard>=2.10"),
}

# (config group, option) -> the extra it needs
NEEDS: dict[tuple[str, str], str] = {
    ("hydra/launcher", "joblib"): "joblib",
    ("hydra/launcher", "submitit_local"): "slurm",
    ("hydra/launcher", "submitit_slurm"): "slurm",
    ("hydra/launcher", "slurm"): "slurm",
    ("hydra/sweeper", "optuna"): "optuna",
    ("model", "timm"): "timm",
    ("detect", "confident_learning"): "detect",
    ("attack", "autoattack"): "attacks",
    ("logger", "tensorboard"): "tensorboard",
}


class MissingExtra(ConfigError):
    """An optional package that the chosen setting needs is not installed."""


def installed(extra: str) -> bool:
    module = EXTRAS[extra][0]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def hint(extra: str, what: str) -> str:
    """One line: what needs which extra, and the pip command."""
    requirement = EXTRAS[extra][1]
    package = re.split(r"[<>=~!]", requirement)[0]
    return (
        f"{what} needs the optional package {package} (the lossbench[{extra}] extra); "
        f"install it with: pip install '{requirement}'  (in a lossbench checkout: pip install '.[{extra}]')"
    )


def require(extra: str, what: str) -> None:
    """Raise MissingExtra (a one-line ConfigError) unless ``extra``'s package imports."""
    if not installed(extra):
        raise MissingExtra(hint(extra, what))


def _experiment_choices(name: str) -> list[tuple[str, str]]:
    """The ``override /group: option`` entries of conf/experiment/NAME.yaml's defaults list."""
    from omegaconf import OmegaConf

    path = resources.files("lossbench.conf").joinpath("experiment", f"{name}.yaml")
    if not path.is_file():
        return []
    try:
        defaults = OmegaConf.create(path.read_text()).get("defaults") or []
    except Exception:  # a broken preset is reported by the composition, not here
        return []
    out = []
    for entry in defaults:
        if isinstance(entry, str) or not hasattr(entry, "items"):
            continue
        for key, value in entry.items():
            group = str(key).removeprefix("override").strip().lstrip("/")
            if value is not None:
                out.append((group, str(value)))
    return out


def chosen_options(overrides: list[str]) -> list[tuple[str, str]]:
    """(group, option) pairs that the command line picks, directly or through ``+experiment=NAME``;
    sweeps over options (``model=mlp,timm``) count each option."""
    out: list[tuple[str, str]] = []
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep:
            continue
        group = key.lstrip("+~")
        for option in value.split(","):
            option = option.strip()
            out.append((group, option))
            if group == "experiment":
                out.extend(_experiment_choices(option))
    return out


def missing_extra(overrides: list[str]) -> str | None:
    """The one-line hint for the first chosen option whose extra is not installed, else None."""
    for group, option in chosen_options(overrides):
        extra = NEEDS.get((group, option))
        if extra is not None and not installed(extra):
            return hint(extra, f"{group}={option}")
    return None

"""Validate command-line overrides before Hydra starts any job: one clear line per problem.

Every combination of a sweep is composed and validated (lossbench.validation) before the
first job starts: names and keys first (no torch needed), then the types and values of each
combination. Composing costs a fraction of a second, so it is done once per distinct choice
of config groups; value overrides (``seed=0,1,2``, ``optim.lr=0.1,0.01``) are applied to a
copy with Hydra's own override code.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

CONFIG_MODULE = "lossbench.conf"


def search_roots(searchpath: list[str]) -> list:
    """Config folders of ``hydra.searchpath`` entries (``pkg://module`` or ``file://dir``) that exist."""
    roots = []
    for entry in searchpath:
        entry = str(entry)
        try:
            if entry.startswith("pkg://"):
                roots.append(resources.files(entry[len("pkg://"):].strip("/").replace("/", ".")))
            else:
                roots.append(Path(entry.removeprefix("file://")))
        except (ImportError, TypeError, ValueError):
            continue  # Hydra itself reports a search path it cannot use
    return roots


def group_options(group: str, searchpath: list[str] = ()) -> list[str] | None:
    """The YAML option names of config group ``group`` in lossbench's config tree and in the
    ``hydra.searchpath`` folders (None if it is a group in none of them)."""
    found = None
    for root in [resources.files(CONFIG_MODULE), *search_roots(list(searchpath))]:
        folder = root.joinpath(group)
        if folder.is_dir():
            found = (found or set()) | {p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")}
    return None if found is None else sorted(found)


def _one_line(exc: BaseException, groups: list[str] = ()) -> str:
    cause = exc
    while cause.__cause__ is not None and not str(cause).strip():
        cause = cause.__cause__
    text = str(cause)
    if "is not in struct" in text or "Could not override" in text:
        key = text.split("'")[1] if "'" in text else "?"
        return unknown_key(key, list(groups))
    if "Could not find '" in text and "Available options" in text:
        missing = text.split("Could not find '", 1)[1].split("'", 1)[0]
        group, _, name = missing.rpartition("/")
        options = []
        for ln in text.split("Available options", 1)[1].splitlines()[1:]:
            if not ln.startswith(("\t", " ")) or not ln.strip():  # the options are the indented lines
                break
            options.append(ln.strip())
        return f"unknown {group} '{name}'; known: {', '.join(options)}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("See https")]
    return " ".join(lines[:3])


def unknown_key(key: str, groups: list[str] = ()) -> str:
    """One line for an override of a key the config does not have: the key it most likely meant, or,
    when the group's class takes it and the option's file only leaves it out, how to add it."""
    from lossbench.validation import _schema_of, nearest_key

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            config = OmegaConf.to_container(compose(config_name="config", overrides=list(groups)))
    except Exception:  # noqa: BLE001 -- only the hint is lost
        config = {}
    finally:
        GlobalHydra.instance().clear()
    group, _, param = key.partition(".")
    node = config.get(group) if isinstance(config, dict) else None
    if param and "." not in param and isinstance(node, dict) and "_target_" in node:
        from hydra.utils import get_object

        try:
            schema, _ = _schema_of(get_object(str(node["_target_"])))
        except Exception:  # noqa: BLE001 -- an import error is the job's to report
            schema = {}
        if param in schema:
            name = str(node["_target_"]).rsplit(".", 1)[-1]
            return (f"unknown config key '{key}': {name} takes {param}, but this {group} option's file does "
                    f"not set it; add it with +{key}=VALUE")
    near = nearest_key(key, config) if isinstance(config, dict) else None
    return f"unknown config key '{key}'" + (f"; did you mean {near}?" if near else
                                            " (lossbench run --cfg job lists every key)")


def malformed(overrides: list[str], exc: BaseException) -> str:
    """One line for overrides Hydra's grammar rejects: which one, and how to quote a value."""
    from lossbench.report.escape import printable

    parser = OverridesParser.create()
    for line in overrides:
        try:
            parser.parse_overrides([line])
        except Exception as one:  # noqa: BLE001 -- Hydra's grammar errors
            key, sep, value = line.partition("=")
            plain = value.isascii() and not any(c.isspace() for c in value)
            if sep and value and not plain and '"' not in value:
                quoted = f"'{printable(key)}=\"{printable(value)}\"'"
                return (f"malformed override '{printable(line)}': Hydra reads an unquoted value as ASCII "
                        f"letters, digits and _-+./\\:@ only; quote it: {quoted} "
                        "(the outer quotes keep the shell from removing the inner ones)")
            bad = (str(one).splitlines() or [type(one).__name__])[0]
            return (f"malformed override '{printable(line)}' ({printable(bad)}); overrides look like "
                    "key=value, group=option or key=a,b,c")
    bad = (str(exc).splitlines() or [type(exc).__name__])[0]
    return f"malformed override ({printable(bad)}); overrides look like key=value, group=option or key=a,b,c"


def _choice_names(value: object) -> list:
    """The option names in an override value: itself, a list's items, or those of a "[a,b]" string."""
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        return [v.strip() for v in value[1:-1].split(",") if v.strip()]
    return [value]


@dataclass
class Precheck:
    """The outcome: ``problem`` (one line) or None; how many combinations were checked; the
    output folder the command will write into (run dir, or sweep dir with ``-m``)."""

    problem: str | None
    combinations: int = 0
    output_dir: Path | None = None


def check_overrides(overrides: list[str], multirun: bool = False) -> str | None:
    """None if every override parses and every combination composes and validates, else one line."""
    return check(overrides, multirun).problem


def check(overrides: list[str], multirun: bool = False) -> Precheck:
    """Parse, compose and validate every combination of ``overrides``; find the output folder."""
    for line in overrides:
        key, sep, _ = line.partition("=")
        if sep and not key.lstrip("+~"):
            return Precheck(f"malformed override '{line}': the key before '=' is empty; "
                            "overrides look like key=value, group=option or key=a,b,c")
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as exc:  # hydra raises OverrideParseException with a grammar message
        return Precheck(malformed(overrides, exc))
    from hydra.core.override_parser.types import Glob, IntervalSweep

    hydra_lines, base_groups, base_values, group_dims, value_dims = [], [], [], [], []
    intervals = []
    searchpath = [o for o in parsed if o.get_key_element().lstrip("+~") == "hydra.searchpath"]
    roots = [str(v) for o in searchpath if isinstance(o.value(), list) for v in o.value()]
    for o in parsed:
        key = o.get_key_element()
        bare = key.lstrip("+~")
        is_group = "." not in bare and "@" not in bare and (
            group_options(bare, roots) is not None or "/" in bare)
        if bare.startswith("hydra"):
            if bare in ("hydra.run.dir", "hydra.sweep.dir") and not str(o.value()).strip():
                return Precheck(f"{bare} is empty: name the folder to write into, e.g. {bare}=outputs/mine")
            if not o.is_sweep_override():
                hydra_lines.append(o.input_line)
            continue
        options = group_options(bare, roots) if "." not in bare and "@" not in bare else None
        values = None
        if o.is_sweep_override():
            value = o.value()
            if isinstance(value, Glob):
                if options is None:
                    continue  # Hydra expands it against what it knows
                values = value.filter(options)
                if not values:
                    return Precheck(f"{o.input_line} matches no {bare} option, so no job would run; "
                                    f"known: {', '.join(options)}")
            elif isinstance(value, IntervalSweep):  # a sampling sweeper's search range: its ends are checked
                intervals.append(o.input_line)
                values = [value.start, value.end]
            else:
                try:
                    values = list(o.sweep_string_iterator())
                except Exception:  # other searches are for the sweeper
                    continue
                if not values:
                    return Precheck(f"{o.input_line} expands to no value, so no job would run; e.g. "
                                    f"{bare}=range(0,3) is 0,1,2 and {bare}=a,b is two values")
        for value in values if values is not None else [o.value()]:
            for name in _choice_names(value):  # a group takes one option or a list: calibrator=[a,b]
                if options is not None and isinstance(name, str) and name not in options:
                    return Precheck(f"unknown {bare} '{name}'; known: {', '.join(options)}")
            if bare == "objective" and isinstance(value, str):
                from lossbench.metrics.views import renamed_hint  # only then: it imports torch

                if renamed_hint(value):
                    return Precheck(f"objective={value}: {renamed_hint(value)}")
        if values is None:
            (base_groups if is_group else base_values).append(o.input_line)
        else:
            (group_dims if is_group else value_dims).append([f"{key}={v}" for v in values])

    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    parser = OverridesParser.create()
    composed: list[tuple[DictConfig, dict]] = []
    output_dir = None
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            for groups in itertools.product(*group_dims):
                cfg = compose(config_name="config", return_hydra_config=True,
                              overrides=base_groups + list(groups) + hydra_lines + base_values)
                if output_dir is None:
                    output_dir = _output_dir(cfg, multirun)
                    problem = _sweep_problem(cfg, intervals) if multirun else None
                    if problem:
                        return Precheck(problem)
                choices = {k: v for k, v in OmegaConf.to_container(cfg.hydra.runtime.choices).items()
                           if not str(k).startswith("hydra")}
                with open_dict(cfg):
                    del cfg["hydra"]
                for values in itertools.product(*value_dims):
                    job = copy.deepcopy(cfg) if values else cfg
                    if values:
                        ConfigLoaderImpl._apply_overrides_to_config(parser.parse_overrides(list(values)), job)
                    composed.append((job, choices))
    except Exception as exc:
        return Precheck(_one_line(exc, base_groups))
    finally:
        GlobalHydra.instance().clear()

    from lossbench.errors import ConfigError
    from lossbench.io import run_folder_problem, unwritable_reason
    from lossbench.validation import check_config

    if output_dir is not None:
        reason = unwritable_reason(output_dir)
        if reason:
            return Precheck(f"output directory {output_dir} cannot be written: {reason}")
        problem = run_folder_problem(output_dir)
        if problem:
            return Precheck(problem)
    for job, choices in composed:
        try:
            check_config(job, choices)
        except ConfigError as exc:
            where = _combination(job, choices, group_dims, value_dims) if len(composed) > 1 else ""
            return Precheck(f"{exc}{where}", len(composed), output_dir)
    return Precheck(None, len(composed), output_dir)


def _sweep_problem(cfg: DictConfig, intervals: list[str]) -> str | None:
    """Why the sweeper or launcher a sweep composed cannot run it (their own errors are tracebacks)."""
    from lossbench.errors import ConfigError
    from lossbench.validation import check_hydra

    sweeper = str(OmegaConf.select(cfg, "hydra.sweeper._target_", default=""))
    if intervals and sweeper.endswith("BasicSweeper"):
        return (f"{intervals[0]}: interval() is a search range for a sampling sweeper "
                "(hydra/sweeper=optuna); the basic sweeper takes lists (a,b,c) and range(start,stop)")
    settings = {}
    for section in ("launcher", "sweeper"):
        node = cfg.hydra.get(section)
        settings[section] = {}
        for key in node or {}:
            try:
                settings[section][key] = node[key]
            except Exception:  # noqa: BLE001 -- an interpolation only the running sweep resolves
                continue
    try:
        check_hydra(settings)
    except ConfigError as exc:
        return str(exc)
    return None


def _combination(job: DictConfig, choices: dict, group_dims: list, value_dims: list) -> str:
    parts = []
    for dim in group_dims:
        key = dim[0].split("=", 1)[0].lstrip("+~")
        parts.append(f"{key}={choices.get(key)}")
    for dim in value_dims:
        key = dim[0].split("=", 1)[0].lstrip("+~")
        parts.append(f"{key}={OmegaConf.select(job, key, default='?', throw_on_missing=False)}")
    return f" (in the sweep combination {' '.join(parts)}; no job was started)" if parts else ""


def _output_dir(cfg: DictConfig, multirun: bool) -> Path | None:
    try:
        return Path(str(cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir)).absolute()
    except Exception:  # an unresolvable folder pattern: Hydra will say so
        return None


def check_output_dir(overrides: list[str]) -> str | None:
    """None if the run/sweep output folder can be created and written, else why not."""
    from lossbench.io import run_folder_problem, unwritable_reason

    target = "outputs"
    for o in overrides:
        key, _, value = o.partition("=")
        if key in ("hydra.run.dir", "hydra.sweep.dir") and value and "$" not in value:
            target = value
    path = Path(target).absolute()
    reason = unwritable_reason(path)
    if reason:
        return f"output directory {path} cannot be written: {reason}"
    return run_folder_problem(path)

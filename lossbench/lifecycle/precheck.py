"""Validate command-line overrides before Hydra starts any job: one clear line per problem.

Every combination of a sweep is composed and validated (lossbench.lifecycle.validation) before the
first job starts: names and keys first (no torch needed), then the types and values of each
combination. Composing costs a fraction of a second, so it is done once per distinct choice
of config groups; value overrides (``seed=0,1,2``, ``optim.lr=0.1,0.01``) are applied to a
copy with Hydra's own override code.
"""

from __future__ import annotations

import copy
import difflib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from lossbench.lifecycle.config_tree import CONFIG_MODULE, INTERNAL_GROUPS, group_options


def closest(name: str, known: list[str], n: int = 3) -> list[str]:
    """The names of ``known`` nearest to ``name``, nearest first (a different case counts as nearest)."""
    lowered = name.lower()

    def score(candidate: str) -> tuple[float, bool]:
        c = candidate.lower()  # a transposition (sym06 for sym60) ranks above another one-letter change
        return difflib.SequenceMatcher(None, lowered, c).ratio(), sorted(c) == sorted(lowered)

    scored = sorted(((score(k), k) for k in known), key=lambda sk: (-(sk[0][0] == 1.0), -sk[0][1], -sk[0][0]))
    return [k for (ratio, _), k in scored if ratio >= 0.6][:n]


def unknown_option(group: str, name: object, options: list[str]) -> str:
    """The one line for an option that group ``group`` does not have: the closest names, then all."""
    near = closest(str(name), options)
    hint = f"; closest: {', '.join(near)}" if near else ""
    return f"unknown {group} '{name}'{hint}; known: {', '.join(options)}"


def unknown_key(key: str, known: list[str], everywhere: list[str] = ()) -> str:
    """The one line for a key the config does not have: "did you mean ...?" when one is close beside
    it, or when a key of that name is elsewhere (``everywhere``: every dotted key; ``lr`` -> ``optim.lr``).

    Never "+key=VALUE": that would add a stray key and train a default run. A key inside a
    node (``loss.gama``) with nothing close may be a new argument of the node's target."""
    parent, _, last = key.rpartition(".")
    known = [k for k in known if not k.startswith("_")]
    near = closest(last, known, n=1)
    if near:
        return f"unknown config key '{key}'; did you mean {f'{parent}.' if parent else ''}{near[0]}?"
    same = [k for k in everywhere if k != key and k.rsplit(".", 1)[-1] == last]
    if same:
        return f"unknown config key '{key}'; did you mean {min(same, key=len)}?"
    if parent:
        return (f"unknown config key '{key}'; {parent} sets {', '.join(known) or 'no keys'} (an argument "
                f"of {parent}'s target that the config does not set is added with +{key}=VALUE)")
    return f"unknown config key '{key}'; the top level has {', '.join(known)}"


def _known_keys(key: str, groups: list[str]) -> tuple[list[str], list[str]]:
    """The keys beside ``key`` in the config composed with the command line's ``groups`` (for a
    top-level key, the config groups too), and every dotted key of that config."""
    from lossbench.lifecycle.validation import dotted_keys

    parent = key.rpartition(".")[0]
    try:
        cfg = compose(config_name="config", overrides=groups)
    except Exception:
        cfg = compose(config_name="config")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    known = [str(k) for k in node.keys()] if isinstance(node, DictConfig) else []
    if not parent:
        groups_here = [p.name for p in resources.files(CONFIG_MODULE).iterdir() if p.is_dir()
                       and p.name not in INTERNAL_GROUPS and not p.name.startswith(("_", "hydra"))]
        known = list(dict.fromkeys([*known, *sorted(groups_here)]))
    return known, dotted_keys(OmegaConf.to_container(cfg))


def _one_line(exc: BaseException, groups: list[str] = ()) -> str:
    cause = exc
    while cause.__cause__ is not None and not str(cause).strip():
        cause = cause.__cause__
    text = str(cause)
    if "is not in struct" in text or "Could not override" in text:
        key = text.split("'")[1] if "'" in text else "?"
        try:
            return unknown_key(key, *_known_keys(key, list(groups)))
        except Exception:  # the composition itself fails: say what we know
            return f"unknown config key '{key}'"
    if "Could not find '" in text and "Available options" in text:
        missing = text.split("Could not find '", 1)[1].split("'", 1)[0]
        group, _, name = missing.rpartition("/")
        options = []
        for ln in text.split("Available options", 1)[1].splitlines()[1:]:
            if not ln.startswith(("\t", " ")) or not ln.strip():  # the options are the indented lines
                break
            options.append(ln.strip())
        return unknown_option(group, name, options)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("See https")]
    return " ".join(lines[:3])


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
    mode: object = None  # the composed config's hydra.mode (None unless a config or override sets it)


# The task overrides whose every combination the last successful check of this process composed and
# validated (lossbench's sweeper then skips Hydra's own composition of each job before launching it).
_VALIDATED: tuple[str, ...] | None = None


def validated(overrides: Sequence[str]) -> bool:
    """Whether the last check of this process composed and validated every combination of ``overrides``."""
    return _VALIDATED is not None and _VALIDATED == tuple(o for o in overrides if not o.startswith("hydra"))


def check_overrides(overrides: list[str], multirun: bool = False, data: bool = True) -> str | None:
    """None if every override parses and every combination composes and validates, else one line."""
    return check(overrides, multirun, data).problem


def check(overrides: list[str], multirun: bool = False, data: bool = True) -> Precheck:
    """Parse, compose and validate every combination of ``overrides``; find the output folder.
    ``data``: whether the dataset's files are checked too (a plan that only lists runs skips them)."""
    global _VALIDATED
    _VALIDATED = None
    expanded = True  # every sweep's values enumerated (a range or an interval is the sweeper's)
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
        if o.is_sweep_override() and not multirun:
            return Precheck(f"{o.input_line} gives several values, which is a sweep: add -m "
                            f"(lossbench run -m {o.input_line} ...); for a list value write "
                            f"{bare}=[{','.join(str(v) for v in o.sweep_string_iterator())}]"
                            if type(o.value()).__name__ == "ChoiceSweep" else
                            f"{o.input_line} is a sweep: add -m (lossbench run -m {o.input_line} ...)")
        if o.is_sweep_override():
            value = o.value()
            if isinstance(value, Glob):
                if options is None:
                    expanded = False
                    continue  # Hydra expands it against what it knows
                values = value.filter(options)
                if not values:
                    return Precheck(f"{o.input_line} matches no {bare} option, so no job would run; "
                                    f"known: {', '.join(options)}")
            elif isinstance(value, IntervalSweep):  # a sampling sweeper's search range: its ends are checked
                intervals.append(o.input_line)
                values = [value.start, value.end]
                expanded = False
            else:
                try:
                    values = list(o.sweep_string_iterator())
                except Exception:  # other searches are for the sweeper
                    expanded = False
                    continue
                if not values:
                    return Precheck(f"{o.input_line} expands to no value, so no job would run; e.g. "
                                    f"{bare}=range(0,3) is 0,1,2 and {bare}=a,b is two values")
        for value in values if values is not None else [o.value()]:
            for name in _choice_names(value):  # a group takes one option or a list: calibrator=[a,b]
                if options is not None and isinstance(name, str) and name not in options:
                    return Precheck(unknown_option(bare, name, options))
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
    output_dir = mode = None
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            for groups in itertools.product(*group_dims):
                cfg = compose(config_name="config", return_hydra_config=True,
                              overrides=base_groups + list(groups) + hydra_lines + base_values)
                if output_dir is None:
                    output_dir = _output_dir(cfg, multirun)
                    mode = OmegaConf.select(cfg, "hydra.mode", default=None)
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
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            return Precheck(_one_line(exc, [g for g in base_groups if not g.startswith(("+", "~"))]))
    finally:
        GlobalHydra.instance().clear()

    from lossbench.core.errors import ConfigError
    from lossbench.lifecycle.run_folder import run_folder_problem, unwritable_reason
    from lossbench.lifecycle.validation import check_config, check_early, check_resolved

    if output_dir is not None:
        reason = unwritable_reason(output_dir)
        if reason:
            return Precheck(f"output directory {output_dir} cannot be written: {reason}")
        problem = run_folder_problem(output_dir)
        if problem:
            return Precheck(problem)
    # every combination's cheap checks (no torch, no plug-in) first, then each one's whole check
    for check_one in (lambda job, choices: check_early(check_resolved(job, choices), data),
                      lambda job, choices: check_config(job, choices, data)):
        for job, choices in composed:
            try:
                check_one(job, choices)
            except ConfigError as exc:
                where = _combination(job, choices, group_dims, value_dims) if len(composed) > 1 else ""
                return Precheck(f"{exc}{where}", len(composed), output_dir)
    if expanded and data:
        _VALIDATED = tuple(o for o in overrides if not o.startswith("hydra"))
    return Precheck(None, len(composed), output_dir, mode)


def _sweep_problem(cfg: DictConfig, intervals: list[str]) -> str | None:
    """Why the sweeper or launcher a sweep composed cannot run it (their own errors are tracebacks)."""
    from lossbench.core.errors import ConfigError
    from lossbench.lifecycle.validation import check_hydra

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
    from lossbench.lifecycle.run_folder import run_folder_problem, unwritable_reason

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

"""One validation layer: the schema of every config group, checked for every sweep combination
before any job starts (lossbench.lifecycle.precheck) and again inside each job (values a sweeper picks).

Where each group's schema comes from (one place each, so a new plug-in brings its own):

- a group with a ``_target_`` (dataset, model, loss, noise, reweight, optim, scheduler): the
  target's signature, its parameter names and type hints;
- ``trainer``: the ``Trainer`` dataclass; ``logger``: ``LoggerSettings``; the top level:
  ``TopLevel`` (both below);
- ``RULES``: ranges and choices a type hint cannot say (``optim.lr > 0``, sizes as a fraction or
  a count, ``trainer.progress`` in its modes), checked instead of the hint for those keys.

After the types, the cheap constructors run (trainer, loss, noise model with the dataset's
number of classes, reweighting, optimizer on a dummy parameter, scheduler), so their own
range checks are part of the same layer. Every problem is a ``ConfigError`` of one line naming
the key, the value and what is allowed.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import inspect
import math
import os
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lossbench.core.errors import ConfigError


@dataclass
class TopLevel:
    """Keys at the top of config.yaml."""

    seed: int = 0
    noise_seed: int = 0
    data_dir: str = "data"
    objective: str = "best_val_acc_noisy"
    smooth_ece: bool = False
    verbose: bool = False


@dataclass
class LoggerSettings:
    """conf/logger/*.yaml: local files only, or W&B as well (see lossbench.tracking.wandb)."""

    wandb: bool = False
    tensorboard: bool = False
    csv: bool = False
    mode: str = "online"
    project: str | None = None
    entity: str | None = None
    group: str | None = None
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    notes: str | None = None
    dir: str | None = None
    init_timeout: float = 90.0


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _integers(low: int) -> Callable[[Any], bool]:
    """An integer >= low, or a list of them."""
    return lambda v: all(_integer(x) and x >= low for x in (v if isinstance(v, (list, tuple)) else [v]))


def _share(v: Any) -> bool:
    return _number(v) and 0 <= v < 1


def _grid(v: Any) -> bool:
    return v is None or (isinstance(v, (list, tuple)) and len(v) > 0 and all(_number(x) and x >= 0
                                                                              for x in v))


def _count(low: int, null: bool = False) -> Callable[[Any], bool]:
    """An integer >= low (or null)."""
    return lambda v: (null and v is None) or (_integer(v) and v >= low)


def _size(zero_ok: bool) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        if _integer(v):
            return v >= (0 if zero_ok else 1)
        return isinstance(v, float) and (0.0 <= v if zero_ok else 0.0 < v) and v < 1.0
    return check


def _choices(values: Callable[[], typing.Iterable[str]]) -> tuple[Callable[[Any], bool], Callable[[], str]]:
    def check(v: Any) -> bool:
        return not isinstance(v, bool) and str(v) in set(values())

    return check, lambda: "one of " + ", ".join(values())


def _reductions() -> tuple[str, ...]:
    from lossbench.core.choices import REDUCTIONS

    return tuple(REDUCTIONS)


def _progress_modes() -> tuple[str, ...]:
    from lossbench.train.sinks import PROGRESS_MODES

    return PROGRESS_MODES


# trainer.precision's names, known without torch (lossbench.train.trainer.PRECISIONS maps them to dtypes)
PRECISION_NAMES = ("32", "bf16", "16-mixed")


def _precisions() -> tuple[str, ...]:
    return PRECISION_NAMES


def _wandb_modes() -> tuple[str, ...]:
    from lossbench.tracking.wandb import MODES

    return MODES


_SIZE = "a fraction of the training set in [0, 1) or a whole number of samples >= 0 (write 2, not 2.0, for 2)"
# key -> (check, what is allowed); checked instead of the type hint for that key.
RULES: dict[str, tuple[Callable[[Any], bool], str | Callable[[], str]]] = {
    "seed": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "noise_seed": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "optim.lr": (lambda v: _number(v) and v > 0, "a number > 0"),
    "optim.momentum": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "optim.dampening": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "optim.weight_decay": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "optim.eps": (lambda v: _number(v) and v > 0, "a number > 0"),
    "optim.betas": (lambda v: isinstance(v, (list, tuple)) and len(v) == 2
                    and all(_number(b) and 0 <= b < 1 for b in v), "two numbers in [0, 1), e.g. [0.9,0.999]"),
    "scheduler.T_max": (lambda v: _integer(v) and v > 0, "an integer > 0"),
    "scheduler.eta_min": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "scheduler.factor": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "scheduler.total_iters": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "noise.rate": (lambda v: _number(v) and 0 <= v < 1,
                   "a number in [0, 1) (the probability that a label is corrupted)"),
    "trainer.epochs": (lambda v: _integer(v) and v > 0, "a positive integer"),
    "trainer.batch_size": (lambda v: _integer(v) and v > 0, "a positive integer"),
    "trainer.eval_batch_size": (lambda v: _integer(v) and v > 0, "a positive integer"),
    "trainer.checkpoint_every": (lambda v: _integer(v) and v >= 0, "an integer >= 0 (0: never)"),
    "trainer.grad_clip": (lambda v: v is None or (_number(v) and v > 0), "a number > 0 or null"),
    "trainer.l1": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "scheduler.milestones": (lambda v: isinstance(v, (list, tuple)) and _integers(1)(v),
                             "a list of epochs (integers >= 1), e.g. [30,60]"),
    "scheduler.gamma": (lambda v: _number(v) and v > 0, "a number > 0"),
    "dataset.split_seed": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "dataset.seed": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "model.dropout": (_share, "a number in [0, 1)"),
    "model.drop_rate": (_share, "a number in [0, 1)"),
    "model.drop_path_rate": (_share, "a number in [0, 1)"),
    "calibrator.dirichlet.cv_grid": (_grid, "null (no cross-validation) or a non-empty list of numbers >= 0, "
                                     "e.g. [0.001,0.01,0.1]"),
    "dataset.val_size": (_size(zero_ok=True), _SIZE),
    "dataset.subset": (lambda v: v is None or (_integer(v) and v >= 1)
                       or (isinstance(v, float) and 0 < v <= 1),
                       "a fraction in (0, 1] or a whole number of training samples >= 1, or null "
                       "(write 2, not 2.0, for 2)"),
    "dataset.subset_seed": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "trainer.limit_train_batches": (lambda v: v is None or (_integer(v) and v >= 1)
                                    or (isinstance(v, float) and 0 < v <= 1),
                                    "a number of batches >= 1, a fraction in (0, 1] of each epoch's, "
                                    "or null"),
    "dataset.test_size": (_size(zero_ok=False), "a fraction of the dataset in (0, 1) or a whole number of "
                          "samples >= 1 (write 2, not 2.0, for 2)"),
    "loss.reduction": _choices(_reductions),
    "trainer.progress": _choices(_progress_modes),
    "trainer.precision": _choices(_precisions),
    "logger.mode": _choices(_wandb_modes),
    "logger.init_timeout": (lambda v: _number(v) and v > 0, "a number of seconds > 0"),
}

# key -> (check, what is allowed); checked after the type hint has passed, for ranges a hint cannot say.
BOUNDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "model.hidden": (_integers(1), "integers >= 1 (a width, or a list of widths)"),
}

# The settings of Hydra's launchers and sweepers that lossbench's commands use, checked for a sweep
# before it starts (their own errors come late, as tracebacks): key -> (check, what is allowed).
HYDRA_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "hydra.launcher.n_jobs": (lambda v: _integer(v) and v != 0, "a nonzero integer (-1: one job per core)"),
    "hydra.launcher.timeout_min": (_count(1), "an integer > 0"),
    "hydra.launcher.cpus_per_task": (_count(1, null=True), "an integer >= 1 or null"),
    "hydra.launcher.gpus_per_node": (_count(0, null=True), "an integer >= 0 or null"),
    "hydra.launcher.tasks_per_node": (_count(1), "an integer >= 1"),
    "hydra.launcher.nodes": (_count(1), "an integer >= 1"),
    "hydra.launcher.mem_gb": (lambda v: v is None or (_number(v) and v > 0), "a number > 0 or null"),
    "hydra.launcher.array_parallelism": (_count(1), "an integer >= 1"),
    "hydra.launcher.max_num_timeout": (_count(0), "an integer >= 0"),
    "hydra.launcher.signal_delay_s": (_count(0), "an integer >= 0"),
    "hydra.launcher.pack_size": (_count(1), "an integer >= 1"),
    "hydra.launcher.dry_run": (lambda v: isinstance(v, bool), "true or false"),
    "hydra.sweeper.n_trials": (_count(1), "an integer >= 1"),
    "hydra.sweeper.n_jobs": (_count(1), "an integer >= 1"),
    "hydra.sweeper.max_batch_size": (_count(1, null=True), "an integer >= 1 or null"),
}

# Datasets whose number of classes is known without loading them (noise and losses are checked against it).
DATASET_CLASSES = {"digits": 10, "mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100, "svhn": 10}
EXAMPLES = {"noise.rate": "noise.rate=0.4", "noise.matrix": "'noise.matrix=[[0.8,0.2],[0.3,0.7]]'"}


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


# ---------------------------------------------------------------- type hints


def _hint_allows(value: Any, hint: Any) -> bool | None:
    """Whether ``value`` fits ``hint``: True, False, or None when the hint is not one a config value
    can be checked against (a class such as Tensor or nn.Module)."""
    if hint is Any or hint is inspect.Parameter.empty or isinstance(hint, (str, typing.TypeVar)):
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        verdicts = [_hint_allows(value, a) for a in args]
        if any(v is True for v in verdicts):
            return True
        return None if all(v is None for v in verdicts) else False
    if origin is typing.Literal:
        return value in args
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return _integer(value)
    if hint is float:  # NaN is no setting of anything
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, collections.abc.Sequence, collections.abc.Iterable) or hint in (list, tuple):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(args) == len(value) and all(
                _hint_allows(v, a) is not False for v, a in zip(value, args, strict=True))
        return not args or all(_hint_allows(v, args[0]) is not False for v in value)
    if origin in (dict, collections.abc.Mapping) or hint in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    if isinstance(hint, type) and hint.__module__.startswith(("os", "pathlib", "posixpath")):
        return isinstance(value, str)
    return None


def _hint_text(hint: Any) -> str:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [_hint_text(a) for a in args if a is not type(None)]
        parts = [p for p in dict.fromkeys(parts) if p]
        text = " or ".join(parts) or "a value"
        return text + (" or null" if type(None) in args else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    if origin in (list, tuple, collections.abc.Sequence, collections.abc.Iterable) or hint in (list, tuple):
        names = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}
        inner = names.get(args[0] if args else None)
        return f"a list of {inner}, e.g. [1,2]" if inner else "a list"
    if origin in (dict, collections.abc.Mapping) or hint is dict:
        return "a mapping, e.g. {a: 1}"
    return ""


def _schema_of(obj: Any) -> tuple[dict[str, tuple[Any, Any]], bool]:
    """{parameter: (type hint, default)} of a constructor or function, and whether it takes **kwargs."""
    if dataclasses.is_dataclass(obj):
        hints = typing.get_type_hints(obj)
        params = {f.name: (hints.get(f.name, Any), f.default) for f in dataclasses.fields(obj) if f.init}
        return params, False
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return {}, True
    try:
        hints = typing.get_type_hints(obj.__init__ if inspect.isclass(obj) else obj)
    except Exception:  # unresolvable forward references: names are still checked, types not
        hints = {}
    params, var_kw = {}, False
    for name, p in signature.parameters.items():
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind is not p.VAR_POSITIONAL:
            params[name] = (hints.get(name, p.annotation), p.default)
    return params, var_kw


def _check_node(prefix: str, node: dict, schema: dict[str, tuple[Any, Any]], var_kw: bool, what: str) -> None:
    for key, value in node.items():
        if str(key).startswith("_"):
            continue
        dotted = f"{prefix}.{key}" if prefix else str(key)
        rule = RULES.get(dotted)
        if rule is not None:
            check, allowed = rule
            if not check(value):
                allowed = allowed() if callable(allowed) else allowed
                raise ConfigError(f"{dotted} must be {allowed}, got {_show(value)}")
            continue
        if key not in schema:
            if var_kw:
                continue
            known = ", ".join(schema) or "none (it takes no settings)"
            near = difflib.get_close_matches(str(key), list(schema), n=1, cutoff=0.75)
            hint = f"did you mean {prefix + '.' if prefix else ''}{near[0]}? " if near else ""
            raise ConfigError(f"unknown config key '{dotted}' for {what}; {hint}known: {known}")
        hint, default = schema[key]
        if isinstance(value, dict) and "_target_" in value:
            check_node_target(dotted, value)
            continue
        if value is None and default is None:
            continue
        if _hint_allows(value, hint) is False:
            allowed = _hint_text(hint) or f"what {what} takes"
            raise ConfigError(f"{dotted} must be {allowed}, got {_show(value)}")
        bound = BOUNDS.get(dotted)
        if bound is not None and not bound[0](value):
            raise ConfigError(f"{dotted} must be {bound[1]}, got {_show(value)}")


def check_node_target(prefix: str, node: dict) -> None:
    """Check a node with a ``_target_`` against the target's signature."""
    from hydra.utils import get_object

    target = node.get("_target_")
    try:
        obj = get_object(str(target))
    except Exception as exc:
        raise ConfigError(f"{prefix}._target_ '{target}' cannot be imported ({exc})") from None
    schema, var_kw = _schema_of(obj)
    _check_node(prefix, node, schema, var_kw, str(target).rsplit(".", 1)[-1])


def check_types(config: dict, groups: str = "all") -> None:
    """Every key of the resolved config against its group's schema.

    ``groups``: "own" (top level, trainer, logger: the keys others interpolate, such as
    ``scheduler.T_max: ${trainer.epochs}``, so they are named first), "plugins" (every node
    with a ``_target_``) or "all".
    """
    from lossbench.train.trainer import Trainer

    top_schema, _ = _schema_of(TopLevel)
    for key, value in config.items():
        if key == "hydra":
            continue
        plugin = isinstance(value, dict) and "_target_" in value
        if groups != "all" and plugin != (groups == "plugins"):
            continue
        if plugin:
            check_node_target(key, value)
        elif isinstance(value, dict):
            if key == "trainer":
                schema, var_kw = _schema_of(Trainer)
                _check_node(key, value, schema, var_kw, "the trainer")
            elif key == "logger":
                schema, var_kw = _schema_of(LoggerSettings)
                _check_node(key, value, schema, var_kw, "the logger")
            elif key == "calibrator":  # named calibrators, each a node with a _target_
                for name, node in value.items():
                    if isinstance(node, dict) and "_target_" in node:
                        check_node_target(f"{key}.{name}", node)
        elif key in top_schema:
            _check_node("", {key: value}, top_schema, True, "the top level")
        if groups != "plugins" and not plugin and key not in top_schema and not _is_group(key):
            near = nearest_key(str(key), config)
            hint = f"did you mean {near}? " if near else ""
            raise ConfigError(f"unknown config key '{key}': nothing reads it; {hint}the top-level keys are "
                              f"{', '.join(top_schema)} and the config groups (lossbench list)")


def _is_group(key: str) -> bool:
    from lossbench.lifecycle.config_tree import group_options

    return str(key).isidentifier() and group_options(str(key)) is not None


def dotted_keys(config: dict, prefix: str = "") -> list[str]:
    """Every key of ``config`` as a dotted path (hidden keys and hydra left out)."""
    keys = []
    for key, value in config.items():
        if str(key).startswith("_") or key == "hydra":
            continue
        keys.append(prefix + str(key))
        if isinstance(value, dict):
            keys += dotted_keys(value, f"{prefix}{key}.")
    return keys


def nearest_key(key: str, config: dict) -> str | None:
    """The setting of ``config`` someone who wrote ``key`` most likely meant: the same last name
    elsewhere (``lr`` -> ``optim.lr``), else the closest spelling (``trainer.epoch`` ->
    ``trainer.epochs``)."""
    keys = [k for k in dotted_keys(config) if k != key]
    last = key.rsplit(".", 1)[-1]
    same = [k for k in keys if k.rsplit(".", 1)[-1] == last]
    if same:
        return min(same, key=len)
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.75)
    return close[0] if close else None


def check_hydra(hydra: dict) -> None:
    """The launcher's and sweeper's settings a sweep uses (``HYDRA_RULES``), before it starts."""
    for section in ("launcher", "sweeper"):
        node = hydra.get(section) or {}
        for key, value in node.items():
            rule = HYDRA_RULES.get(f"hydra.{section}.{key}")
            if rule is not None and not rule[0](value):
                raise ConfigError(f"hydra.{section}.{key} must be {rule[1]}, got {_show(value)}")


# ---------------------------------------------------------------- values


def describe_error(exc: BaseException) -> str:
    """One line for a construction error, unwrapping Hydra's InstantiationException."""
    from hydra.errors import InstantiationException

    key = ""
    if isinstance(exc, InstantiationException):
        text = str(exc)
        if "full_key:" in text:
            key = text.rsplit("full_key:", 1)[1].strip().split(".")[0] + ": "
        exc = exc.__cause__ or exc
    lines = [ln.strip() for ln in str(exc).strip().strip('"').splitlines() if ln.strip()]
    return key + (lines[0] if lines else type(exc).__name__)


def dataset_identity(node: dict) -> tuple[str, int] | None:
    """(name, number of classes) of a dataset config, when known without loading it."""
    from hydra.utils import get_object

    try:
        builder = get_object(str(node.get("_target_")))
    except Exception:
        return None
    registered = getattr(builder, "registry_name", None)
    name = node.get("name") or registered
    num_classes = node.get("num_classes", DATASET_CLASSES.get(str(registered)))
    if not isinstance(name, str) or not _integer(num_classes):
        return None
    return name, int(num_classes)


def _attempt(group: str, build: Callable[[], Any]) -> Any:
    try:
        return build()
    except ConfigError:
        raise
    except Exception as exc:
        message = describe_error(exc)
        named = message.startswith((f"{group}:", f"{group}.", "trainer.", "unknown trainer"))
        raise ConfigError(("" if named else f"{group}: ") + message) from None


def check_trainer(config: dict) -> None:
    from lossbench.train.trainer import Trainer

    _attempt("trainer", lambda: Trainer(**config["trainer"]))


def check_components(cfg: DictConfig, config: dict) -> None:
    """Build the cheap parts (no data, no model) so their constructors' own checks run."""
    import torch
    from hydra.utils import instantiate

    identity = dataset_identity(config.get("dataset", {}))
    if identity is not None:
        from lossbench.lifecycle.builders import build_loss

        name, num_classes = identity
        # num_train only sizes per-sample buffers; any count serves to check the constructor
        loss = _attempt("loss", lambda: build_loss(cfg.loss, num_classes, 2))
        noise = _attempt("noise", lambda: instantiate(cfg.noise))
        _attempt("noise", lambda: noise.check(num_classes, name))
    reweight = _attempt("reweight", lambda: instantiate(cfg.reweight))
    built = {}
    for group in ("detect", "adversarial", "attack"):
        if group in cfg:
            built[group] = _attempt(group, lambda group=group: instantiate(cfg[group]))
    if identity is not None:  # a set- or batch-level loss, or one without logits, with what needs them
        from lossbench.train.objective import check_pairing

        try:
            check_pairing(loss, reweight, built.get("adversarial"))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if "calibrator" in cfg:
        from lossbench.calibrate import build_calibrators

        _attempt("calibrator", lambda: build_calibrators(cfg.get("calibrator")))
    optimizer = _attempt("optim", lambda: instantiate(cfg.optim)([torch.nn.Parameter(torch.zeros(1))]))
    _attempt("scheduler", lambda: instantiate(cfg.scheduler)(optimizer))
    _attempt("model", lambda: instantiate(cfg.model))


def check_missing(cfg: DictConfig, choices: dict | None = None) -> None:
    missing = sorted(OmegaConf.missing_keys(cfg))
    missing = [k for k in missing if not k.startswith("hydra")]
    if missing:
        key = missing[0]
        group = key.split(".")[0]
        choice = (choices or {}).get(group)
        needs = f"{group}={choice} has no default for it" if choice else "it has no default"
        raise ConfigError(f"{key} has no value: {needs}; set it, e.g. {EXAMPLES.get(key, key + '=VALUE')}")


def resolved(cfg: DictConfig) -> dict:
    try:
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except Exception as exc:
        raise ConfigError(f"the config cannot be resolved: {describe_error(exc)}") from None


def check_objective(config: dict) -> None:
    """The objective names a summary key; an old name gets the hint that says what it became."""
    from lossbench.metrics.views import renamed_hint

    hint = renamed_hint(str(config.get("objective")))
    if hint:
        raise ConfigError(f"objective={config.get('objective')}: {hint}")


def check_resolved(cfg: DictConfig, choices: dict | None = None) -> dict:
    """No missing value, every interpolation resolves, a known objective: the config, resolved."""
    check_missing(cfg, choices)
    config = resolved(cfg)
    check_objective(config)
    return config


def check_rules(config: dict) -> None:
    """Every key that RULES names, wherever it is in the config (no imports: the first checks of a run).

    The top level, ``trainer`` and ``logger`` first: other groups interpolate them
    (``scheduler.T_max: ${trainer.epochs}``), and the key the user set is the one to name."""
    first = [k for k, v in config.items() if not isinstance(v, dict) or k in ("trainer", "logger")]
    for key in [*first, *(k for k in config if k not in first)]:
        value = config[key]
        if key == "hydra":
            continue
        nodes = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, v in nodes:
            dotted = key if sub is None else f"{key}.{sub}"
            rule = RULES.get(dotted)
            if rule is not None and not rule[0](v):
                allowed = rule[1]() if callable(rule[1]) else rule[1]
                raise ConfigError(f"{dotted} must be {allowed}, got {_show(v)}")


DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
# What a machine with a GPU that torch could use has (NVIDIA's driver, ROCm, WSL's GPU bridge).
GPU_NODES = ("/proc/driver/nvidia/gpus", "/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def no_gpu() -> bool:
    """True when this machine certainly has no GPU that torch could use, told without importing torch
    (False: maybe one; torch.cuda.is_available() decides when the trainer is built)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return True
    return not any(os.path.exists(p) for p in GPU_NODES)


def check_device(config: dict) -> None:
    """``trainer.device``: a known name, and ``cuda`` only where a GPU may be (no torch needed)."""
    device = (config.get("trainer") or {}).get("device")
    if not isinstance(device, str):
        return  # the trainer's schema names the type
    if not DEVICE.fullmatch(device):
        raise ConfigError(f"unknown trainer.device '{device}'; known: auto, cpu, cuda, cuda:N")
    if device.startswith("cuda") and no_gpu():
        raise ConfigError(f"trainer.device={device} but no CUDA device is available; use auto or cpu")


def check_dataset_files(config: dict) -> None:
    """An image dataset's files below ``data_dir`` (lossbench.core.dataset_files), before anything is
    imported."""
    from lossbench.core.dataset_files import FILES, missing_message

    node = config.get("dataset")
    if not isinstance(node, dict):
        return
    module, _, name = str(node.get("_target_", "")).rpartition(".")
    data_dir = node.get("data_dir")
    if module != "lossbench.data.vision" or name not in FILES or node.get("download") is not False:
        return
    if isinstance(data_dir, str):
        message = missing_message(name, data_dir)
        if message:
            raise ConfigError(f"dataset: {message}")


def check_extras(config: dict) -> None:
    """A setting that needs an optional package that is not installed: the one-line pip hint."""
    from lossbench.core.extras import require

    if config.get("smooth_ece") is True:
        require("calibration", "smooth_ece=true (SmoothECE)")
    if (config.get("logger") or {}).get("tensorboard") is True:
        require("tensorboard", "logger.tensorboard=true")


def check_early_stopping(config: dict) -> None:
    """``trainer.early_stopping``: its keys, their types and ranges."""
    settings = (config.get("trainer") or {}).get("early_stopping")
    if settings is not None:
        from lossbench.train.early_stopping import check_settings

        check_settings(settings)


def check_early(config: dict, data: bool = True) -> None:
    """The checks that need neither torch nor any plug-in: RULES, the device, the dataset's files
    (unless ``data`` is false: a plan that lists runs without the data), the optional packages a
    setting needs."""
    check_rules(config)
    check_early_stopping(config)
    check_device(config)
    if data:
        check_dataset_files(config)
    check_extras(config)


def check_config(cfg: DictConfig, choices: dict | None = None, data: bool = True) -> dict:
    """Refuse a composed config in one line (ConfigError), or return it resolved (``data``: whether
    the dataset's files are checked)."""
    config = check_resolved(cfg, choices)
    check_early(config, data)
    check_types(config, "own")
    check_trainer(config)
    check_types(config, "plugins")
    check_components(cfg, config)
    return config

"""`lossbench evaluate RUN_DIR [OVERRIDES]`: a run's evaluation metrics again, from its saved weights.

No training: the run's recorded config rebuilds its data (same split, same noisy
labels) and its model, the weights are loaded (``weights_only=True``), and
``lossbench.train.final_eval.evaluate_model`` computes what summary.json holds about the
trained model, including any metric added since the run. On the run's device
and thread count the figures are the summary's exactly.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from lossbench.core.errors import ConfigError

CONFIG = Path(".hydra") / "config.yaml"
HYDRA = Path(".hydra") / "hydra.yaml"
# Keys that tell Hydra what to call and how: a run folder may not choose them (lossbench's options do).
INSTANTIATION_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")
# Dataset settings that do not change which samples are the test and validation samples.
SAME_SAMPLES = ("data_dir", "download", "augment")
_ABSENT = object()


def _show(value, limit: int = 60) -> str:
    from lossbench.report.escape import printable

    return printable(repr(value), limit)


def _read(path: Path):
    """A run folder's record within bounds (``lossbench.core.io.read_recorded``); None when absent."""
    from lossbench.core.io import RecordError, read_recorded

    try:
        return read_recorded(path)
    except FileNotFoundError:
        return None
    except RecordError as exc:
        raise ConfigError(str(exc)) from None


def recorded_run(run_dir: Path) -> tuple[dict, dict, str]:
    """(config, group choices, where the config came from) as the run folder records them.

    The config is ``.hydra/config.yaml``, else summary.json's; the choices are
    ``.hydra/hydra.yaml``'s ``hydra.runtime.choices``, else summary.json's top-level choices.
    Read only, within bounds; nothing in them is trusted yet (``rebuild_config`` checks them).
    """
    config, source = _read(run_dir / CONFIG), str(CONFIG)
    summary = None
    if config is None:
        summary = _read(run_dir / "summary.json")
        config, source = (summary or {}).get("config") if isinstance(summary, dict) else None, "summary.json"
    if not isinstance(config, dict):
        raise ConfigError(f"{run_dir} holds no run config ({CONFIG} or summary.json's): not a run folder")
    hydra = _read(run_dir / HYDRA)
    choices = None
    if isinstance(hydra, dict):
        choices = ((hydra.get("hydra") or {}).get("runtime") or {}).get("choices")
    if not isinstance(choices, dict):
        summary = summary if summary is not None else _read(run_dir / "summary.json")
        choices = summary if isinstance(summary, dict) else {}
    return config, choices, source


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from lossbench.lifecycle.config_tree import CONFIG_MODULE
    from lossbench.lifecycle.precheck import _one_line

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            return compose(config_name="config", overrides=overrides)
    except Exception as exc:  # noqa: BLE001 -- Hydra's composition errors, whatever their type
        raise ConfigError(_one_line(exc)) from None
    finally:
        GlobalHydra.instance().clear()


def _group_choices(config: dict, choices: dict, searchpath: list[str]) -> list[str]:
    """The recorded choices as overrides, each checked against the options of lossbench's group."""
    from lossbench.lifecycle.config_tree import group_options
    from lossbench.lifecycle.run import SPECIALIZATIONS

    picked = {}
    for group, choice in choices.items():
        group = str(group)
        if group.startswith("hydra") or group in SPECIALIZATIONS or "/" in group:
            continue
        options = group_options(group, searchpath) if group.isidentifier() else None
        if options is None:
            continue  # not a config group (a summary's other keys): it chooses nothing
        if not isinstance(choice, str) or choice not in options:
            hint = "" if searchpath else (" (an option of your own package needs "
                                          "hydra.searchpath=[pkg://yourpackage.conf] on this command line)")
            raise ConfigError(f"the run records unknown {group} {_show(choice)}; known: {', '.join(options)}"
                              f"{hint}")
        picked[group] = choice
    calibrators = config.get("calibrator")
    if isinstance(calibrators, dict):
        options = group_options("calibrator", searchpath) or []
        unknown = [str(name) for name in calibrators if name not in options]
        if unknown:
            raise ConfigError(f"the run records unknown calibrator {_show(unknown[0])}; known: "
                              f"{', '.join(options)}")
        picked["calibrator"] = f"[{','.join(map(str, calibrators))}]" if calibrators else "none"
    lines = [f"+experiment={picked.pop('experiment')}"] if "experiment" in picked else []
    return lines + [f"{group}={choice}" for group, choice in picked.items()]


def _plain(value, where: str) -> None:
    """Refuse anything in a value taken from a run folder that could name what is called."""
    if isinstance(value, dict):
        order = {k: i for i, k in enumerate(INSTANTIATION_KEYS)}
        for key, item in sorted(value.items(), key=lambda kv: order.get(str(kv[0]), len(order))):
            if str(key) in INSTANTIATION_KEYS:
                raise ConfigError(f"the run records {where}.{key}={_show(item)}, which lossbench's own "
                                  f"config does not have there; a run folder may record group choices and "
                                  f"plain values, never what is called or how: refused")
            _plain(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _plain(item, f"{where}[{i}]")
    elif isinstance(value, str) and "${" in value:
        raise ConfigError(f"the run records {where}={_show(value)}: interpolations are not taken from a run "
                          "folder (only lossbench's own)")
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise ConfigError(f"the run records {where} as {type(value).__name__}; only plain values are taken")


def _take(recorded: dict, own: dict, where: str = "") -> None:
    """Put the recorded plain values into ``own`` (lossbench's composed config, raw), key by key."""
    first = [k for k in INSTANTIATION_KEYS if k in recorded]  # what is called is checked before the rest
    for key in [*first, *(str(k) for k in recorded if str(k) not in INSTANTIATION_KEYS)]:
        value = recorded[key]
        path = f"{where}.{key}" if where else key
        if not where and key == "hydra":
            continue
        mine = own.get(key, _ABSENT)
        if key in INSTANTIATION_KEYS:
            if mine is _ABSENT or mine != value:
                shown = "nothing" if mine is _ABSENT else _show(mine)
                raise ConfigError(f"the run records {path}={_show(value)} where lossbench's own config has "
                                  f"{shown}; a run folder may record group choices and plain values, never "
                                  "what is called or how: refused")
            continue
        if value == mine:
            continue
        if isinstance(value, dict) and isinstance(mine, dict):
            _take(value, mine, path)
            continue
        _plain(value, path)
        own[key] = value


def rebuild_config(run_dir: Path, searchpath: list[str] = ()) -> tuple:
    """(config, group choices): the run's config rebuilt from lossbench's own config tree.

    Only the recorded group choices (each one of lossbench's options, or of a
    ``hydra.searchpath`` given on the command line: a recorded search path is not
    followed) and plain values are taken; a recorded ``_target_`` (or ``_partial_``,
    ``_args_``, ``_recursive_``, ``_convert_``) other than the one lossbench's own option
    has there, an interpolation, or an unknown option is refused in one line.
    """
    from omegaconf import OmegaConf

    config, choices, source = recorded_run(run_dir)
    lines = _group_choices(config, choices, list(searchpath))
    search = [f"hydra.searchpath=[{','.join(searchpath)}]"] if searchpath else []
    own = OmegaConf.to_container(_compose(lines + search), resolve=False)
    try:
        _take(config, own)
    except RecursionError:
        raise ConfigError(f"{run_dir / source} is nested too deeply") from None
    picked = dict(line.lstrip("+").split("=", 1) for line in lines)
    return OmegaConf.create(own), picked


def _samples(cfg) -> dict:
    """What decides which samples are test and validation samples: the dataset node, resolved."""
    from omegaconf import OmegaConf

    try:
        node = OmegaConf.to_container(cfg.dataset, resolve=True)
    except Exception as exc:  # noqa: BLE001 -- an interpolation that cannot resolve
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"the run's dataset config cannot be resolved ({first})") from None
    return {k: v for k, v in node.items() if k not in SAME_SAMPLES} if isinstance(node, dict) else {}


def load_config(run_dir: Path, overrides: list[str]):
    """The run's config (``rebuild_config``) with ``overrides``, validated (lossbench.lifecycle.validation).

    ``key=value`` changes a setting (``+key=value`` adds one), ``group=option``
    replaces a whole config group by the option's file (as ``lossbench run``
    would); ``hydra.searchpath=[...]`` adds config folders of your own package; other
    ``hydra.*`` overrides are ignored. Overrides that change which samples are test or
    validation samples (the dataset, its split) are refused: the figures would be on
    samples the run trained on.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf, open_dict

    from lossbench.core.errors import config_differences
    from lossbench.lifecycle.config_tree import group_options
    from lossbench.lifecycle.validation import check_config

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception as exc:  # noqa: BLE001 -- Hydra's grammar errors
        from lossbench.lifecycle.precheck import malformed

        raise ConfigError(malformed(list(overrides), exc)) from None
    searchpath = []
    for o in parsed:
        if o.get_key_element().lstrip("+~") == "hydra.searchpath" and isinstance(o.value(), list):
            searchpath += [str(v) for v in o.value()]
    cfg, choices = rebuild_config(Path(run_dir), searchpath)
    samples = _samples(cfg)
    search = [f"hydra.searchpath=[{','.join(searchpath)}]"] if searchpath else []
    OmegaConf.set_struct(cfg, True)
    for o in parsed:
        key = o.get_key_element()
        bare = key.lstrip("+~")
        if bare.startswith("hydra"):
            continue
        if o.is_sweep_override():
            raise ConfigError(f"{o.input_line}: evaluate takes one value per key, not a sweep")
        options = group_options(bare, searchpath) if "." not in bare else None
        if options is not None and isinstance(o.value(), str):
            if o.value() not in options:
                raise ConfigError(f"unknown {bare} '{o.value()}'; known: {', '.join(options)}")
            node = _compose([f"{bare}={o.value()}", *search])[bare]
            with open_dict(cfg):
                cfg[bare] = node
            continue
        if OmegaConf.select(cfg, bare, default="<missing>") == "<missing>" and not key.startswith("+"):
            from omegaconf import DictConfig

            from lossbench.lifecycle.precheck import unknown_key
            from lossbench.lifecycle.validation import dotted_keys

            parent = bare.rpartition(".")[0]
            node = OmegaConf.select(cfg, parent) if parent else cfg
            siblings = [str(k) for k in node.keys()] if isinstance(node, DictConfig) else []
            raise ConfigError(unknown_key(bare, siblings, dotted_keys(OmegaConf.to_container(cfg))))
        with open_dict(cfg):
            OmegaConf.update(cfg, bare, o.value(), merge=True)
    changed = config_differences(samples, _samples(cfg))
    if changed:
        what = "dataset" if "_target_" in changed else f"dataset.{changed[0]}"
        raise ConfigError(f"{what} changes which samples are test and validation samples; "
                          "evaluate scores the run's own test samples (figures on samples the run "
                          "trained on would mean nothing); the dataset settings it may change: "
                          f"{', '.join(SAME_SAMPLES)}")
    for o in parsed:  # the options the overrides chose
        bare = o.get_key_element().lstrip("+~")
        if bare in choices and isinstance(o.value(), str):
            choices[bare] = o.value()
    check_config(cfg, choices)
    return cfg


SHOWN = 8  # runs of a sweep folder named in its one line


def sweep_runs(folder: Path) -> list[Path]:
    """The run folders of a sweep folder (below it, each with a recorded config); [] when ``folder``
    is itself a run."""
    if (folder / CONFIG).is_file() or (folder / "summary.json").is_file():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_dir() and ((p / CONFIG).is_file() or (p / "summary.json").is_file()))


def missing_weights_advice(summary: dict, weights: str) -> str:
    """Why a run has no ``weights`` file, and the setting that would have kept it."""
    if not summary:
        return ("the run has not finished (its weights are saved at its end): resume it with the same "
                "command, or read its metrics.jsonl")
    config = summary.get("config") if isinstance(summary.get("config"), dict) else {}
    trainer = config.get("trainer") if isinstance(config.get("trainer"), dict) else {}
    kept = trainer.get("save_weights", "?")
    if kept not in ("none", "final", "best", "both"):
        kept = _show(kept)  # a run folder is untrusted: anything else is shown as a quoted, printable repr
    if summary.get("status") != "completed":
        return (f"the run ended {_show(summary.get('status', '?'))} (ran with trainer.save_weights={kept}); "
                f"only a completed run keeps its final weights")
    return (f"the run kept no {weights} weights (ran with trainer.save_weights={kept}); rerun it with "
            f"trainer.save_weights={weights} (or both) to keep them")


def _weights(path: Path, device) -> dict:
    """A state_dict file the run wrote, read with ``weights_only=True``; anything else in one line."""
    import warnings

    from lossbench.train.weights import load_state_dict

    try:
        with warnings.catch_warnings():  # torch warns of a pickle it may not read; the line below says it
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = load_state_dict(path, device)
    except Exception as exc:  # noqa: BLE001 -- torch raises many types for a file it will not load
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{path} is not a weights file lossbench can read with weights_only=True "
                          f"({_show(first, 120)}): a pickle that is not plain tensors is never run") from None
    if not isinstance(state, dict):
        raise ConfigError(f"{path} holds {type(state).__name__}, not a state_dict of tensors")
    return state


def _load(module, path: Path, device) -> None:
    try:
        module.load_state_dict(_weights(path, device))
    except (RuntimeError, TypeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{path} does not fit the run's {type(module).__name__} ({_show(first, 160)})") \
            from None


def _same(a, b) -> bool:
    """Equal as summary.json holds them (JSON round trip; NaN is null)."""
    from lossbench.core.io import jsonable

    a, b = jsonable(a), jsonable(b)
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def evaluate_run(run_dir: Path, overrides: list[str] = (), weights: str = "final") -> dict:
    """Rebuild the run's data and model, load ``model_<weights>.pt`` (and ``loss_<weights>.pt`` for a
    loss that predicts through a learned link) and evaluate it.

    Returns ``{"metrics": ..., "reference": ..., "weights": path, "threads": n, "device": str}``;
    ``reference`` holds the run's own figures to compare with: the summary's for the
    final weights, the per-epoch record of the saved epoch for the best ones.
    """
    import torch
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    from lossbench.calibrate import build_calibrators
    from lossbench.core.io import read_json, read_jsonl
    from lossbench.lifecycle.builders import build_data, build_loss, build_model
    from lossbench.losses.base import Loss
    from lossbench.train.final_eval import evaluate_model
    from lossbench.train.threads import apply_threads
    from lossbench.train.trainer import Trainer, set_determinism
    from lossbench.train.weights import LOSS_FILES, WEIGHT_FILES

    run_dir = Path(run_dir)
    if weights not in WEIGHT_FILES:
        raise ConfigError(f"unknown --weights '{weights}'; known: {', '.join(WEIGHT_FILES)}")
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {run_dir} does not exist")
    sweep = sweep_runs(run_dir)
    if sweep:
        shown = ", ".join(p.name for p in sweep[:SHOWN]) + (f" and {len(sweep) - SHOWN} more"
                                                              if len(sweep) > SHOWN else "")
        raise ConfigError(f"{run_dir} is a sweep folder of {len(sweep)} runs, not a run: evaluate one at a "
                          f"time, e.g. lossbench evaluate {sweep[0]}; its runs: {shown}")
    path = run_dir / WEIGHT_FILES[weights]
    summary = read_json(run_dir / "summary.json")
    summary = summary if isinstance(summary, dict) else {}
    if not path.is_file():
        raise ConfigError(f"{path} not found: {missing_weights_advice(summary, weights)}")
    cfg = load_config(run_dir, list(overrides))
    loss_class = get_class(str(cfg.loss._target_)) if "_target_" in cfg.loss else Loss
    linked = loss_class.prediction_logits is not Loss.prediction_logits  # a learned link: LegendreTron's
    loss_path = run_dir / LOSS_FILES[weights]
    if linked and not loss_path.is_file():
        raise ConfigError(
            f"{loss_path} not found: loss '{getattr(loss_class, 'registry_name', loss_class.__name__)}' "
            f"predicts through parameters of its own (a learned link), which {path.name} does not hold; "
            f"runs saved before lossbench kept {loss_path.name} cannot be re-evaluated: read summary.json"
        )
    keys = {o.partition("=")[0].lstrip("+~") for o in overrides}
    recorded = summary.get("provenance") if isinstance(summary.get("provenance"), dict) else {}
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    if "trainer.device" not in keys and isinstance(recorded.get("device"), str):
        device = recorded["device"]
        if not device.startswith("cuda") or torch.cuda.is_available():
            trainer_cfg["device"] = device  # the run's own device, for the run's own numbers
    if "trainer.threads" not in keys and isinstance(recorded.get("num_threads"), int):
        trainer_cfg["threads"] = recorded["num_threads"]  # bit-identical CPU results need the same count
    try:
        trainer = Trainer(**trainer_cfg)
        set_determinism(int(cfg.seed), trainer.deterministic)
        _, split, _ = build_data(cfg)
        split = split.to(trainer.torch_device)
        model = build_model(cfg, trainer, split)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 -- a missing dataset, a bad recorded value: one line
        if isinstance(exc, (MemoryError, RecursionError)):
            raise
        from lossbench.lifecycle.validation import describe_error

        raise ConfigError(f"cannot rebuild the run from {run_dir}: {describe_error(exc)}") from exc
    _load(model, path, trainer.torch_device)
    loss = None
    if linked:
        loss = trainer.prepare_loss(build_loss(cfg.loss, split.num_classes, len(split.y_train)))
        _load(loss, loss_path, trainer.torch_device)
    choice = apply_threads(trainer.threads, model, None, trainer.batch_size, trainer.torch_device)
    metrics = evaluate_model(trainer, model, split, build_calibrators(cfg.get("calibrator")), loss=loss,
                             smoothed=bool(cfg.get("smooth_ece", False)))
    if weights == "final":
        reference = summary if summary.get("weights_final") else {}
    else:
        epoch = summary.get("weights_best_epoch")
        records = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r.get("epoch") == epoch]
        reference = records[-1] if records else {}
    return {"metrics": metrics, "reference": reference, "weights": str(path), "threads": choice.threads,
            "device": str(trainer.torch_device)}


def comparison(metrics: dict, reference: dict) -> tuple[list[tuple[str, object, object, str]], int, int]:
    """Rows (key, recomputed, recorded, verdict) and the counts (identical, compared).

    Timings (keys with ``seconds`` in the name) are shown as ``timing`` and not compared: they are measured,
    not computed, and differ between any two evaluations."""
    rows, same, compared = [], 0, 0
    for key, value in metrics.items():
        if "seconds" in key:
            rows.append((key, value, reference.get(key), "timing"))
        elif key in reference:
            compared += 1
            ok = _same(value, reference[key])
            same += ok
            rows.append((key, value, reference[key], "identical" if ok else "differs"))
        else:
            rows.append((key, value, None, "new"))
    return rows, same, compared


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        text = json.dumps(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return str(value)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="lossbench evaluate",
        description="Recompute a run's evaluation metrics (summary.json's) from its saved weights, without "
                    "training. OVERRIDES change the recorded config: data_dir=/data, trainer.device=cpu, "
                    "trainer.eval_batch_size=512, a config group such as calibrator=NAME, ...",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    parser.add_argument("overrides", nargs="*", metavar="OVERRIDES")
    parser.add_argument("--weights", default="final", choices=("final", "best"),
                        help="model_final.pt (default) or the validation-selected model_best.pt")
    parser.add_argument("--out", type=Path, help="also write the metrics as JSON to this file")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless every recomputed figure equals the run's own")
    args = parser.parse_args(argv)
    if args.out is not None and (args.out.is_dir() or str(args.out).endswith(os.sep)):
        _error(f"--out {args.out} is a folder; name the JSON file to write: --out {args.out / 'eval.json'}")
    try:
        result = evaluate_run(args.run_dir, args.overrides, args.weights)
    except ConfigError as exc:
        _error(str(exc))
    from rich.console import Console
    from rich.table import Table

    from lossbench.report.escape import printable, rich_text

    rows, same, compared = comparison(result["metrics"], result["reference"])
    against = "summary.json" if args.weights == "final" else "metrics.jsonl (saved epoch)"
    table = Table(title=rich_text(f"lossbench evaluate {args.run_dir} ({Path(result['weights']).name}, "
                                  f"{result['device']}, {result['threads']} thread(s))"))
    for column in ("metric", "recomputed", against, ""):
        table.add_column(column, overflow="fold")
    for key, value, recorded, verdict in rows:
        table.add_row(rich_text(key), rich_text(_short(value)),
                      "" if recorded is None else rich_text(_short(recorded)), verdict)
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    timings = sum(r[3] == "timing" for r in rows)
    print(f"{same} of {compared} figures identical to the run's own; "
          f"{sum(r[3] == 'new' for r in rows)} not in the run's record; "
          f"{timings} timings (measured, not compared)", file=sys.stderr)
    if args.out:
        from lossbench.core.io import make_folders, write_json_atomic

        try:
            make_folders(args.out.parent)
            write_json_atomic(args.out, {"run_dir": str(args.run_dir), "weights": result["weights"],
                                         "device": result["device"], "threads": result["threads"],
                                         "overrides": list(args.overrides), **result["metrics"]})
        except OSError as exc:
            _error(f"cannot write {printable(args.out)} ({exc.strerror or exc}); nothing was written", 1)
    if args.check and compared == 0:
        _error("--check: nothing was compared (the run's record holds none of the recomputed figures), "
               "so nothing was checked", 1)
    if args.check and same != compared:
        sys.exit(1)


def _error(message: str, status: int = 2) -> None:
    from lossbench.report.escape import printable

    print(f"lossbench: error: {printable(message)}", file=sys.stderr)
    sys.exit(status)

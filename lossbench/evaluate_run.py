"""`lossbench evaluate RUN_DIR [OVERRIDES]`: a run's evaluation metrics again, from its saved weights.

No training: the run's recorded config rebuilds its data (same split, same noisy
labels) and its model, the weights are loaded (``weights_only=True``), and
``lossbench.evaluate.evaluate_model`` computes what summary.json holds about the
trained model, including any metric added since the run. On the run's device
and thread count the figures are the summary's exactly.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from lossbench.errors import ConfigError

CONFIG = Path(".hydra") / "config.yaml"


def load_config(run_dir: Path, overrides: list[str]):
    """The run's recorded config (``.hydra/config.yaml``, else summary.json's) with ``overrides``.

    ``key=value`` changes a setting (``+key=value`` adds one), ``group=option``
    replaces a whole config group by the option's file (as ``lossbench run``
    would), ``hydra.*`` is ignored.
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf, open_dict

    from lossbench.io import read_json
    from lossbench.precheck import CONFIG_MODULE, group_options

    if (run_dir / CONFIG).is_file():
        cfg = OmegaConf.load(run_dir / CONFIG)
    else:
        recorded = (read_json(run_dir / "summary.json") or {}).get("config")
        if not isinstance(recorded, dict):
            raise ConfigError(f"{run_dir} holds no run config ({CONFIG} or summary.json): not a run folder")
        cfg = OmegaConf.create(recorded)
    if "smooth_ece" not in cfg:  # runs made before the setting: smooth_ece=true still asks for SmoothECE
        cfg.smooth_ece = False
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"malformed override ({first}); overrides look like key=value") from exc
    OmegaConf.set_struct(cfg, True)
    for o in parsed:
        key = o.get_key_element()
        bare = key.lstrip("+~")
        if bare.startswith("hydra"):
            continue
        if o.is_sweep_override():
            raise ConfigError(f"{o.input_line}: evaluate takes one value per key, not a sweep")
        options = group_options(bare) if "." not in bare else None
        if options is not None and isinstance(o.value(), str):
            if o.value() not in options:
                raise ConfigError(f"unknown {bare} '{o.value()}'; known: {', '.join(options)}")
            GlobalHydra.instance().clear()
            try:
                with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
                    node = compose(config_name="config", overrides=[f"{bare}={o.value()}"])[bare]
            finally:
                GlobalHydra.instance().clear()
            with open_dict(cfg):
                cfg[bare] = node
            continue
        if OmegaConf.select(cfg, bare, default="<missing>") == "<missing>" and not key.startswith("+"):
            raise ConfigError(f"unknown config key '{bare}' (to add a new key, write +{bare}=VALUE)")
        with open_dict(cfg):
            OmegaConf.update(cfg, bare, o.value(), merge=True)
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
    kept = ((summary.get("config") or {}).get("trainer") or {}).get("save_weights", "?")
    if summary.get("status") != "completed":
        return (f"the run ended {summary.get('status', '?')} (ran with trainer.save_weights={kept}); "
                f"only a completed run keeps its final weights")
    return (f"the run kept no {weights} weights (ran with trainer.save_weights={kept}); rerun it with "
            f"trainer.save_weights={weights} (or both) to keep them")


def _same(a, b) -> bool:
    """Equal as summary.json holds them (JSON round trip; NaN is null)."""
    from lossbench.io import jsonable

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

    from lossbench.evaluate import evaluate_model
    from lossbench.io import read_json, read_jsonl
    from lossbench.losses.base import Loss
    from lossbench.run import build_data, build_loss, build_model
    from lossbench.train.threads import apply_threads
    from lossbench.train.trainer import Trainer, set_determinism
    from lossbench.train.weights import LOSS_FILES, WEIGHT_FILES, load_state_dict

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
    summary = read_json(run_dir / "summary.json") or {}
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
    recorded = summary.get("provenance") or {}
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    if "trainer.device" not in keys and recorded.get("device"):
        device = str(recorded["device"])
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
        model.load_state_dict(load_state_dict(path, trainer.torch_device))
        loss = None
        if linked:
            loss = trainer.prepare_loss(build_loss(cfg.loss, split.num_classes, len(split.y_train)))
            loss.load_state_dict(load_state_dict(loss_path, trainer.torch_device))
    except ConfigError:
        raise
    except (ValueError, TypeError, KeyError, OSError, RuntimeError) as exc:
        raise ConfigError(f"cannot rebuild the run from {run_dir}: {str(exc).splitlines()[0]}") from exc
    choice = apply_threads(trainer.threads, model, None, trainer.batch_size, trainer.torch_device)
    metrics = evaluate_model(trainer, model, split, loss=loss, smoothed=bool(cfg.get("smooth_ece", False)))
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
    try:
        result = evaluate_run(args.run_dir, args.overrides, args.weights)
    except ConfigError as exc:
        print(f"lossbench: error: {exc}", file=sys.stderr)
        sys.exit(2)
    from rich.console import Console
    from rich.table import Table

    rows, same, compared = comparison(result["metrics"], result["reference"])
    against = "summary.json" if args.weights == "final" else "metrics.jsonl (saved epoch)"
    table = Table(title=f"lossbench evaluate {args.run_dir} ({Path(result['weights']).name}, "
                        f"{result['device']}, {result['threads']} thread(s))")
    for column in ("metric", "recomputed", against, ""):
        table.add_column(column, overflow="fold")
    for key, value, recorded, verdict in rows:
        table.add_row(key, _short(value), "" if recorded is None else _short(recorded), verdict)
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    timings = sum(r[3] == "timing" for r in rows)
    print(f"{same} of {compared} figures identical to the run's own; "
          f"{sum(r[3] == 'new' for r in rows)} not in the run's record; "
          f"{timings} timings (measured, not compared)", file=sys.stderr)
    if args.out:
        from lossbench.io import write_json_atomic

        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.out, {"run_dir": str(args.run_dir), "weights": result["weights"],
                                     "device": result["device"], "threads": result["threads"],
                                     "overrides": list(args.overrides), **result["metrics"]})
    if args.check and same != compared:
        sys.exit(1)

"""The task function: one experiment from a composed config to summary.json."""

from __future__ import annotations

import inspect
import logging
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lossbench import noise as noise_lib
from lossbench.data.split import Split
from lossbench.errors import ConfigError, config_differences
from lossbench.evaluate import evaluate_model
from lossbench.io import provenance, read_json, write_json_atomic
from lossbench.losses.base import Loss
from lossbench.metrics import renamed_hint, selection_figures
from lossbench.noise.base import NoiseModel, NoisyLabels
from lossbench.reweight.base import ReweightContext, Reweighter
from lossbench.train.objective import check_training, parameter_groups
from lossbench.train.sinks import build_sinks
from lossbench.train.trainer import Diverged, RestartFromScratch, Trainer, set_determinism

log = logging.getLogger("lossbench")

FINISHED = ("completed", "diverged")
CHECKPOINT = "checkpoint.pt"


def build_loss(cfg: DictConfig, num_classes: int, num_train: int | None = None) -> Loss:
    """Instantiate ``cfg.loss``, passing ``num_classes`` (and ``num_train``, the size of the
    training set, for losses with per-sample state) to losses whose constructor takes them."""
    factory = instantiate(cfg, _partial_=True)
    params = inspect.signature(factory.func).parameters
    known = {"num_classes": num_classes, "num_train": num_train}
    kwargs = {k: v for k, v in known.items() if k in params and v is not None and k not in factory.keywords}
    return factory(**kwargs)


def finished_summary(out_dir: Path) -> dict | None:
    """The summary of a finished run in ``out_dir``, or None."""
    summary = read_json(out_dir / "summary.json")
    if summary is not None and summary.get("status") in FINISHED:
        return summary
    return None


# Settings that do not change what a run computes: a finished run or a checkpoint
# made with other values of these is still the same experiment.
NOT_EXPERIMENT = {"logger": None, "objective": None, "data_dir": None,
                  "trainer": ("progress", "force", "checkpoint_every"), "dataset": ("data_dir", "download")}


def experiment_key(config: dict) -> dict:
    """The resolved config less the settings listed in NOT_EXPERIMENT."""
    key = {}
    for name, value in config.items():
        drop = NOT_EXPERIMENT.get(name, ())
        if drop is None:
            continue
        key[name] = {k: v for k, v in value.items() if k not in drop} if isinstance(value, dict) else value
    return key


def _same_experiment(out_dir: Path, recorded: dict | None, current: dict) -> None:
    differs = config_differences(experiment_key(recorded or {}), experiment_key(current))
    if differs:
        raise ConfigError(
            f"{out_dir} holds a run of a different configuration (differs in {', '.join(differs[:5])}); "
            "use another hydra.run.dir / hydra.sweep.dir, or trainer.force=true to overwrite it"
        )


def _choices() -> dict:
    hc = HydraConfig.get()
    return {
        k: v for k, v in hc.runtime.choices.items()
        if not k.startswith("hydra") and k != "dataset_loss"
    }


def _objective(cfg: DictConfig, summary: dict) -> float:
    value = summary.get(cfg.get("objective", "best_val_acc_noisy"))
    return float(value) if isinstance(value, (int, float)) else float("nan")


def run(cfg: DictConfig) -> float:
    """Run one experiment; whatever happens, leave a record in the output directory.

    A finished run (valid summary.json) is skipped unless ``trainer.force``; an
    interrupted one resumes from its checkpoint; a failure writes failure.json.
    In a multirun a failed job returns NaN so the sweep goes on.
    """
    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    if not cfg.trainer.force:
        done = finished_summary(out_dir)
        if done is not None:
            try:
                _same_experiment(out_dir, done.get("config"), OmegaConf.to_container(cfg, resolve=True))
            except ConfigError as exc:
                if multirun:
                    log.error("%s; this job is not run", exc)
                    return float("nan")
                print(f"lossbench: error: {exc}", file=sys.stderr)
                sys.exit(2)
            log.info("%s already holds a finished run (status %s); skipping. "
                     "Set trainer.force=true to rerun.", out_dir, done["status"])
            return _objective(cfg, done)
    else:
        for name in ("summary.json", CHECKPOINT, "metrics.jsonl", "noise.npz"):
            (out_dir / name).unlink(missing_ok=True)
    (out_dir / "failure.json").unlink(missing_ok=True)
    try:
        try:
            summary = _run(cfg, out_dir)
        except RestartFromScratch as restart:
            summary = _run(cfg, out_dir, checkpoint_error=str(restart))
        return _objective(cfg, summary)
    except Exception as exc:
        message = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
        write_json_atomic(out_dir / "failure.json", {
            "status": "failed",
            "phase": "setup" if isinstance(exc, ConfigError) else "training",
            "error": message,
            "traceback": traceback.format_exc(),
            **_choices(),
            "overrides": list(hc.overrides.task),
        })
        if multirun:
            log.error("run %s failed: %s (details in failure.json); the sweep goes on", out_dir, message)
            return float("nan")
        if isinstance(exc, ConfigError):
            print(f"lossbench: error: {message}", file=sys.stderr)
            sys.exit(2)
        raise


def _describe(exc: BaseException) -> str:
    """One line for a setup error, unwrapping Hydra's InstantiationException."""
    key = ""
    if isinstance(exc, InstantiationException):
        text = str(exc)
        if "full_key:" in text:
            key = text.rsplit("full_key:", 1)[1].strip().split(".")[0] + ": "
        exc = exc.__cause__ or exc
    text = str(exc).strip().strip('"').splitlines()
    return key + (text[0] if text else type(exc).__name__)


def validate(cfg: DictConfig) -> None:
    """Checks that need no data: refuse before anything is loaded."""
    lr = cfg.optim.get("lr")
    if lr is not None and not float(lr) > 0:
        raise ConfigError(f"optim.lr must be positive, got {lr}")
    if int(cfg.seed) < 0 or int(cfg.noise_seed) < 0:
        raise ConfigError(f"seed and noise_seed must be >= 0, got {cfg.seed} and {cfg.noise_seed}")
    hint = renamed_hint(str(cfg.get("objective")))
    if hint:
        raise ConfigError(f"objective={cfg.objective}: {hint}")


def build_data(cfg: DictConfig) -> tuple[NoiseModel, Split, NoisyLabels]:
    """The run's dataset with its noisy labels (on the CPU): (noise model, split, noisy labels)."""
    noise_model = instantiate(cfg.noise)
    split = instantiate(cfg.dataset)
    split, noisy = noise_lib.apply(noise_model, split, int(cfg.noise_seed))
    return noise_model, split, noisy


def build_model(cfg: DictConfig, trainer: Trainer, split: Split) -> nn.Module:
    """A freshly initialised model of the run's architecture on the trainer's device
    (its initial weights come from torch's global generator)."""
    return trainer.prepare_model(instantiate(cfg.model)(split.input_shape, split.num_classes))


def _run(cfg: DictConfig, out_dir: Path, checkpoint_error: str | None = None) -> dict:
    started = time.perf_counter()
    choices = _choices()
    try:
        validate(cfg)
        trainer = Trainer(**OmegaConf.to_container(cfg.trainer, resolve=True))
        seed = int(cfg.seed)
        set_determinism(seed, trainer.deterministic)
        noise_model, split, noisy = build_data(cfg)
        device = trainer.torch_device
        split = split.to(device)
        torch.manual_seed(seed)
        model = build_model(cfg, trainer, split)
        loss_fn = build_loss(cfg.loss, split.num_classes, len(split.y_train)).to(device)
        reweight = instantiate(cfg.reweight)
        check_training(loss_fn, reweight, split.y_train_noisy, trainer.batch_size, device)
        reweight.setup(ReweightContext(
            split=split, loss=loss_fn, true_T=noisy.expected_T, device=device, seed=seed,
            make_model=lambda: build_model(cfg, trainer, split),
            train_warmup=lambda m, epochs: _warmup(cfg, trainer, m, split, epochs, seed),
        ))
        optimizer = instantiate(cfg.optim)(parameter_groups(model, loss_fn))
        scheduler = instantiate(cfg.scheduler)(optimizer)
    except ConfigError:
        raise
    except (ValueError, TypeError, KeyError, OSError, InstantiationException) as exc:
        raise ConfigError(_describe(exc)) from exc
    np.savez_compressed(
        out_dir / "noise.npz",
        y_noisy=noisy.y_noisy.numpy(),
        is_noisy=noisy.is_noisy.numpy(),
        y_clean=split.pool_labels().numpy(),
        expected_T=noisy.expected_T,
        realized_T=noisy.realized_T,
        train_idx=split.train_idx.numpy(),
        val_idx=split.val_idx.numpy(),
    )

    ckpt = out_dir / CHECKPOINT
    sinks = build_sinks(cfg, out_dir, choices, trainer.progress)

    status, diverged_epoch = "completed", None
    try:
        history = trainer.fit(
            model, loss_fn, reweight, optimizer, scheduler, split, seed, sinks,
            checkpoint_path=ckpt if trainer.checkpoint_every else None,
            checkpoint_meta={"experiment": experiment_key(OmegaConf.to_container(cfg, resolve=True))},
        )
    except Diverged as exc:
        status, diverged_epoch, history = "diverged", exc.epoch, exc.history
        log.warning("run diverged at epoch %d (loss not finite); recorded as 'diverged'", exc.epoch)
    except BaseException:
        for sink in sinks:
            sink.close(None)
        raise

    summary: dict = {"status": status, **choices}
    summary.update(
        loss_family=type(loss_fn).family,
        loss_params=loss_fn.hyperparameters(),
        seed=seed,
        noise_seed=int(cfg.noise_seed),
        noise_kind=noise_model.kind,
        noise_rate=getattr(noise_model, "rate", None),
        expected_noise_rate=_expected_rate(noisy.expected_T, split.pool_labels(), split.num_classes),
        realized_noise_rate=noisy.rate,
        num_classes=split.num_classes,
        num_train=len(split.y_train),
        num_val=len(split.y_val),
        num_test=len(split.y_test),
        epochs=len(history),
    )
    if status == "diverged":
        summary["diverged_epoch"] = diverged_epoch
    else:
        summary.update(evaluate_model(trainer, model, split, loss_fn))
    summary.update(_history_figures(history))
    summary.update({f"reweight_{k}": v for k, v in reweight.summary().items()})
    if checkpoint_error:
        summary["checkpoint_error"] = checkpoint_error
    summary["wall_time_s"] = time.perf_counter() - started
    summary["overrides"] = list(HydraConfig.get().overrides.task)
    summary["provenance"] = provenance(device)
    summary["config"] = OmegaConf.to_container(cfg, resolve=True)
    for sink in sinks:
        try:
            sink.close(summary)
        except Exception as exc:  # a tracker's failure must not cost the run its summary
            log.warning("%s failed to finish: %s", type(sink).__name__, exc)
    write_json_atomic(out_dir / "summary.json", summary)
    ckpt.unlink(missing_ok=True)
    log.info("%s: %s, test acc %.4f, realized noise %.3f -> %s", out_dir.name, status,
             summary.get("test_acc", float("nan")), noisy.rate, out_dir / "summary.json")
    return summary


def _expected_rate(T: np.ndarray, y_clean: torch.Tensor, num_classes: int) -> float:
    """The share of labels the noise model meant to change: sum_i prior_i (1 - T_ii)."""
    prior = np.bincount(y_clean.numpy(), minlength=num_classes) / max(len(y_clean), 1)
    return float(prior @ (1.0 - np.diag(T)))


def _warmup(cfg: DictConfig, trainer: Trainer, model, split, epochs: int, seed: int):
    """Train ``model`` with cross-entropy on the noisy labels for ``epochs`` (estimators).

    The run's optimizer at a constant learning rate: the run's scheduler is sized
    for ``trainer.epochs``, not for the warm-up.
    """
    from lossbench.losses.comp_sum import CrossEntropy

    warm = replace(trainer, epochs=int(epochs), progress="none", checkpoint_every=0)
    optimizer = instantiate(cfg.optim)(model.parameters())
    scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    warm.fit(model, CrossEntropy(), Reweighter(), optimizer, scheduler, split, seed)
    return model


def _history_figures(history: list[dict]) -> dict:
    """Best/final figures from the per-epoch records, and model selection on each validation view."""
    if not history:
        return {}
    last = history[-1]
    train_seconds = sum(r["train_seconds"] for r in history)
    samples = sum(r["throughput"] * r["train_seconds"] for r in history)
    return {
        "final_test_acc": last["test_acc"],
        "best_test_acc": max(r["test_acc"] for r in history),
        **selection_figures(history),
        "final_train_clean_acc": last["train_clean_acc"],
        "final_memorization": last["memorization"],
        "train_seconds": train_seconds,
        "throughput": samples / train_seconds if train_seconds > 0 else None,
    }

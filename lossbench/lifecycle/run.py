"""The task function: one experiment from a composed config to summary.json.

The lifecycle of a job, in order (README, "Interrupting, resuming"):

1. take the run directory's lock (a second command on it waits, saying so in one line);
2. check, writing nothing: the config against the schemas (lossbench.lifecycle.validation), the
   directory's records (a finished run of the same experiment is skipped; a summary, a
   checkpoint or an unfinished run of another experiment is refused), then build every
   part in memory (data, noise, model, loss, reweighting, optimizer);
3. only then write: ``.hydra/`` (Hydra is told not to write it itself, so a refused run leaves
   the directory as it was), ``noise.npz``, ``metrics.jsonl``, checkpoints, ``summary.json``
   (each atomically, with the user's umask);
4. a stop request (SIGTERM, SIGINT, preemption) checkpoints at the next batch boundary and
   ends the job with a one-line status; a failure writes ``failure.json``.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import shlex
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from lossbench.core import signals
from lossbench.core.errors import ConfigError, config_differences
from lossbench.core.identity import NOT_EXPERIMENT, experiment_key  # noqa: F401 (NOT_EXPERIMENT: re-exported)
from lossbench.core.io import (
    RecordError,
    ensure_folder,
    read_json,
    read_recorded,
    write_json_atomic,
    write_text_atomic,
    write_with_atomic,
)
from lossbench.data.split import Split
from lossbench.data.subset import describe_cut
from lossbench.detect import detection_scores
from lossbench.detect.runner import save_detection
from lossbench.lifecycle.builders import Parts, build_data, build_parts, build_sinks
from lossbench.lifecycle.callbacks import record_outcome
from lossbench.lifecycle.naming import register_resolvers
from lossbench.lifecycle.run_folder import LOCK_NAME, DirectoryBusy, RunLock, provenance, run_folder_problem
from lossbench.lifecycle.summary_table import end_of_run_table
from lossbench.lifecycle.validation import check_config, describe_error
from lossbench.metrics import selection_figures
from lossbench.noise.base import NoiseModel, NoisyLabels
from lossbench.train.checkpoint import CorruptCheckpoint, load_checkpoint
from lossbench.train.early_stopping import EarlyStopping
from lossbench.train.final_eval import evaluate_model
from lossbench.train.trainer import DIVERGED_HINT, Diverged, RestartFromScratch
from lossbench.train.weights import LOSS_FILES, WEIGHT_FILES, BestWeights, kept, weights_summary

log = logging.getLogger("lossbench")
register_resolvers()  # a sweep's job folder name, resolved wherever the job runs (a joblib or SLURM worker)

FINISHED = ("completed", "diverged")
# Defaults-list entries that specialize a combination (dataset x loss, protocol x loss or noise); not choices.
SPECIALIZATIONS = ("dataset_loss", "protocol_dataset", "protocol_loss", "protocol_noise")
CHECKPOINT = "checkpoint.pt"
# what a run writes as its result (trainer.force=true removes them all before it starts again)
RESULTS = ("summary.json", CHECKPOINT, "metrics.jsonl", "metrics.csv", "noise.npz", "detect.npz",
           *WEIGHT_FILES.values(), *LOSS_FILES.values())
# the files of a run directory that are written atomically (through a temporary file beside them)
RECORDS = (*RESULTS, "failure.json")
# a packed sweep's pending checkpoint (lossbench.train.packed.pending_path), which another launcher removes
PENDING_CHECKPOINT = CHECKPOINT + ".next"


def finished_summary(out_dir: Path) -> dict | None:
    """The summary of a finished run in ``out_dir``, or None."""
    summary = read_json(out_dir / "summary.json")
    if summary is not None and summary.get("status") in FINISHED:
        return summary
    return None


class Refusal(ConfigError):
    """The run directory holds another experiment's records: refused before anything is written."""


def _same_experiment(out_dir: Path, recorded: dict | None, current: dict) -> None:
    differs = config_differences(experiment_key(recorded or {}), experiment_key(current))
    if differs:
        raise Refusal(
            f"{out_dir} holds a run of a different configuration (differs in {', '.join(differs[:5])}); "
            "use another hydra.run.dir / hydra.sweep.dir, or trainer.force=true to overwrite it"
        )


def _choices() -> dict:
    hc = HydraConfig.get()
    return {
        k: v for k, v in hc.runtime.choices.items()
        if not k.startswith("hydra") and k not in SPECIALIZATIONS
    }


def run(cfg: DictConfig) -> float:
    """Run one experiment; whatever happens, leave a record in the output directory (or, when the
    run is refused before it starts, leave the directory exactly as it was).

    A finished run (valid summary.json) is skipped unless ``trainer.force``; an
    interrupted one resumes from its checkpoint; a failure writes failure.json.
    In a multirun a failed, refused or interrupted job returns NaN so the sweep goes on
    (or winds down), and the sweep's closing line counts it.
    """
    hc = HydraConfig.get()
    with signals.handle_signals():
        value = _Job(cfg, hc).run()
    if signals.orphaned():  # a worker whose sweep command died: its job is saved; leave now
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + int(signals.stop_requested() or 15))
    return value


@dataclass
class _Ready:
    """A job past its checks, with its parts built: what the writing phase starts from."""

    parts: Parts
    config: dict
    force: bool
    checkpoint_error: str | None


@dataclass
class _Training:
    """A job's open training: the sinks it feeds and when its training phase began."""

    sinks: list
    best: BestWeights | None
    started: float = field(default_factory=time.perf_counter)


class _Job:
    """One run through its lifecycle (module doc). ``run`` does it all for a lone job; the packed
    launcher (lossbench.lifecycle.packs) calls the phases itself, so that every member of a pack is checked,
    set up, written and summarised by this same code: ``open`` (the lock), ``check`` (nothing
    written), ``begin`` and ``start`` (the writes before training), ``finish`` (the summary) or
    one of the endings (``fail``, ``interrupted``), then ``close``.

    ``data`` builds the (CPU) split with its noise (default ``build_data``), ``to_device`` moves
    it to the trainer's device (default ``Split.to``): the members of a pack pass functions that
    share one dataset. ``progress`` replaces ``trainer.progress`` for the display sinks.
    """

    def __init__(self, cfg: DictConfig, hc, *,
                 data: Callable[[DictConfig], tuple[NoiseModel, Split, NoisyLabels]] | None = None,
                 to_device: Callable[[Split, torch.device], Split] | None = None,
                 progress: str | None = None) -> None:
        self.cfg, self.hc = cfg, hc
        self.out_dir = Path(hc.runtime.output_dir)
        self.multirun = hc.mode == RunMode.MULTIRUN
        self.num = hc.job.num if self.multirun else None
        self.choices = _choices()
        self.fresh = False
        self.remove_if_fresh = False
        self.data = data or build_data
        self.to_device = to_device
        self.progress = progress
        self.lock: RunLock | None = None

    def say(self, message: str) -> None:
        print(f"lossbench: {message}", file=sys.stderr, flush=True)

    def outcome(self, status: str, **extra) -> None:
        if self.multirun:
            record_outcome(self.num, {"status": status, "run_dir": str(self.out_dir), "at": time.time(),
                                      **extra})

    def run(self) -> float:
        ended = self.open()
        if ended is not None:
            return ended
        try:
            try:
                return self._locked()
            except signals.Interrupted as stop:
                return self.interrupted(stop)
        finally:
            self.close()

    def open(self) -> float | None:
        """Take the run directory's lock (None: held; else the job ends here with this value)."""
        if self.multirun:
            signals.watch_sweep()
            if signals.sweep_stopped():
                signals.request_stop(15, "the sweep was stopped")
        self.fresh = self.out_dir.is_dir() and not any(self.out_dir.iterdir())
        signum = signals.stop_requested()
        if signum is not None:
            self.remove_if_fresh = True
            self.outcome("not_started")
            self._cleanup()
            if not self.multirun:  # a lone run stopped before it began ends as a stopped run does
                why = signals.stop_reason() or signals.signal_name(signum)
                self.say(f"stopped ({why}) before the run started; nothing was written; rerun the command")
                sys.exit(128 + int(signum))
            return float("nan")
        problem = self.folder_problem()
        if problem is not None:
            return self._refuse(Refusal(problem), setup_failed=False)
        lock = RunLock(self.out_dir)
        try:
            lock.acquire(on_wait=lambda holder: self.say(
                f"{self.out_dir} is busy ({holder} holds its lock); waiting until it is free"),
                abort=lambda: signals.stop_requested() is not None)
        except DirectoryBusy:
            self.outcome("not_started")
            return float("nan")
        except OSError as exc:  # the lock is a link or not a file (planted after the check)
            return self._refuse(Refusal(f"cannot lock {self.out_dir}: {exc}"), setup_failed=False)
        self.lock = lock
        return None

    def folder_problem(self) -> str | None:
        """Why the run directory cannot be used (links, a checkpoint that is a folder, ...), or None;
        in a sweep, a job directory that is itself a link is refused too."""
        if self.multirun and self.out_dir.is_symlink():
            return (f"{self.out_dir} is a symbolic link to {os.readlink(self.out_dir)}: a sweep's job "
                    "directories are folders of their own; remove the link")
        return run_folder_problem(self.out_dir, (*RECORDS, PENDING_CHECKPOINT))

    def close(self) -> None:
        """Release the lock ``open`` took; remove what a refused run made in a folder it found empty."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        self._cleanup()

    def _cleanup(self) -> None:
        """A refused run in a folder it found empty removes what it made there (its lock, a log)."""
        if not (self.fresh and self.remove_if_fresh) or not self.out_dir.is_dir():
            return
        made = list(self.out_dir.iterdir())
        if all(p.name == LOCK_NAME or p.suffix == ".log" for p in made):
            shutil.rmtree(self.out_dir, ignore_errors=True)

    # -------------------------------------------------------------- checks: nothing written

    def _locked(self) -> float:
        ready = self.check()
        if not isinstance(ready, _Ready):
            return ready
        self._clear(ready)
        # a packed sweep's pending checkpoint, left when another launcher runs the job: this job resumes
        # from its checkpoint.pt, its own state at an epoch's end whatever the pack's other members did
        (self.out_dir / PENDING_CHECKPOINT).unlink(missing_ok=True)
        try:
            self._write_records()
            try:
                summary = self._train(ready.parts, ready.config, ready.checkpoint_error)
            except RestartFromScratch as restart:
                summary = self._train(self._setup(ready.config), ready.config, str(restart))
        except signals.Interrupted:
            raise
        except Exception as exc:
            return self.fail(exc)
        return self.done(summary)

    def done(self, summary: dict) -> float:
        """Record the finished run's outcome; its objective."""
        self.outcome(summary["status"])
        return _objective(self.cfg, summary)

    def check(self) -> _Ready | float:
        """Validate, look at the directory's records and build every part, writing nothing.

        A float: the job ends here (skipped, or refused with its one line / failure record).
        """
        cfg, out_dir = self.cfg, self.out_dir
        force = False
        try:
            config = check_config(cfg, self.choices)
            force = config["trainer"].get("force") is True
            if not force:
                done = finished_summary(out_dir)
                if done is not None:
                    _same_experiment(out_dir, done.get("config"), config)
                    self.say(f"{out_dir} already holds a finished run (status {done['status']}); skipping. "
                             "Set trainer.force=true to rerun.")
                    self.outcome(done["status"], skipped=True)
                    return _objective(cfg, done)
                checkpoint_error = self._check_records(config)
            else:
                checkpoint_error = None
            parts = self._setup(config)
        except Refusal as exc:
            return self._refuse(exc, setup_failed=False)
        except ConfigError as exc:
            return self._refuse(exc, setup_failed=True)
        return _Ready(parts, config, force, checkpoint_error)

    def begin(self, ready: _Ready, extra_files: tuple[str, ...] = ()) -> None:
        """From here on, the run writes: stale records go (``extra_files`` too, on force), then
        ``.hydra/`` is written and an old failure.json removed."""
        self._clear(ready, extra_files)
        self._write_records()

    def _clear(self, ready: _Ready, extra_files: tuple[str, ...] = ()) -> None:
        out_dir, force, checkpoint_error = self.out_dir, ready.force, ready.checkpoint_error
        if force:
            for name in RESULTS:
                (out_dir / name).unlink(missing_ok=True)
            for events in (out_dir / "tensorboard").glob("events.out.tfevents.*"):  # logger=tensorboard's
                events.unlink(missing_ok=True)
        elif checkpoint_error:
            log.warning("checkpoint unusable, starting over from scratch: %s", checkpoint_error)
            (out_dir / CHECKPOINT).unlink(missing_ok=True)
        if force:
            for name in extra_files:
                (out_dir / name).unlink(missing_ok=True)
        # temporary files of atomic writes a killed run left behind (".checkpoint.pt.<random>.tmp");
        # the directory's lock is held, so no other writer has one open
        for name in RECORDS:
            for stale in out_dir.glob(f".{name}.*.tmp"):
                stale.unlink(missing_ok=True)

    def _write_records(self) -> None:
        if self.lock is not None:
            self.lock.describe_holder()
        self._write_hydra()
        (self.out_dir / "failure.json").unlink(missing_ok=True)

    def _check_records(self, config: dict) -> str | None:
        """Refuse a directory that holds another experiment; return why its checkpoint is unusable."""
        out_dir, ckpt = self.out_dir, self.out_dir / CHECKPOINT
        if ckpt.exists():
            try:
                state = load_checkpoint(ckpt)
            except CorruptCheckpoint as exc:
                return str(exc)
            meta = {"experiment": experiment_key(config)}
            if state.get("meta") != meta:
                differs = config_differences(state.get("meta") or {}, meta)
                raise Refusal(
                    f"{ckpt} belongs to a different configuration (differs in {', '.join(differs[:5])}); "
                    "use another output directory or trainer.force=true"
                )
            return None
        recorded = self.out_dir / ".hydra" / "config.yaml"
        if recorded.exists() and not (out_dir / "failure.json").exists():
            try:
                previous = OmegaConf.to_container(OmegaConf.create(read_recorded(recorded)), resolve=True)
            except RecordError as exc:  # a bomb, a FIFO, a huge file: refused, not read
                raise Refusal(f"{exc}; use another hydra.run.dir / hydra.sweep.dir, or trainer.force=true "
                              "to overwrite the folder") from None
            except Exception:  # unreadable: nothing to protect
                return None
            if not isinstance(previous, dict):
                return None
            differs = config_differences(experiment_key(previous), experiment_key(config))
            if differs:
                raise Refusal(
                    f"{out_dir} holds an unfinished run of a different configuration (differs in "
                    f"{', '.join(differs[:5])}); use another hydra.run.dir / hydra.sweep.dir, "
                    "or trainer.force=true to overwrite it"
                )
        return None

    def _setup(self, config: dict) -> Parts:
        """Build every part in memory (lossbench.lifecycle.builders.build_parts); a problem is a
        ConfigError (nothing has been written)."""
        try:
            resuming = (self.out_dir / CHECKPOINT).exists()
            return build_parts(self.cfg, config, self.out_dir, resuming, self.data, self.to_device)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 -- whatever stops setup is reported in one line
            if isinstance(exc, (MemoryError, RecursionError)):
                raise
            raise ConfigError(describe_error(exc)) from exc

    def _refuse(self, exc: ConfigError, setup_failed: bool) -> float:
        message = str(exc).replace("\n", " ")
        if not self.multirun:
            self.remove_if_fresh = True
            print(f"lossbench: error: {message}", file=sys.stderr, flush=True)
            sys.exit(2)
        if not setup_failed:
            self.say(f"job {self.num} refused: {message}; this job is not run")
            self.outcome("refused", error=message)
            return float("nan")
        # a job of a sweep that fails at setup leaves its record, as the sweep's closing line points at it
        try:
            self._write_hydra()
            path = self._write_failure("setup", message)
        except OSError as write_error:
            path = None
            message += f" (failure.json could not be written: {write_error})"
        self.say(f"job {self.num} ({self.out_dir}) failed at setup: {message}; the sweep goes on")
        self.outcome("failed", failure=str(path) if path else None, error=message)
        return float("nan")

    # -------------------------------------------------------------- writing

    def _write_hydra(self) -> None:
        """``.hydra/{config,hydra,overrides}.yaml`` as Hydra writes them (config.yaml tells it not to); not
        fsynced: every start of the run writes them again, and the summary holds the config too."""
        folder = ensure_folder(self.out_dir / ".hydra")
        write_text_atomic(folder / "config.yaml", OmegaConf.to_yaml(self.cfg), sync=False)
        hydra_cfg = copy.deepcopy(HydraConfig.instance().cfg)
        with read_write(hydra_cfg.hydra), open_dict(hydra_cfg.hydra):
            hydra_cfg.hydra.output_subdir = ".hydra"
        write_text_atomic(folder / "hydra.yaml", OmegaConf.to_yaml(hydra_cfg), sync=False)
        write_text_atomic(folder / "overrides.yaml", OmegaConf.to_yaml(self.hc.overrides.task), sync=False)

    def _write_failure(self, phase: str, message: str) -> Path:
        path = self.out_dir / "failure.json"
        write_json_atomic(path, {
            "status": "failed",
            "phase": phase,
            "error": message,
            "traceback": traceback.format_exc(),
            **self.choices,
            "overrides": list(self.hc.overrides.task),
        })
        return path

    def _train(self, parts: Parts, config: dict, checkpoint_error: str | None,
               training: _Training | None = None) -> dict:
        """Train the built run (``training``: its records already opened by ``start``) and summarise it."""
        training = self.start(parts) if training is None else training
        trainer = parts.trainer
        status, diverged_epoch = "completed", None
        try:
            history = trainer.fit(
                parts.model, parts.loss_fn, parts.reweight, parts.optimizer, parts.scheduler, parts.split,
                parts.seed, training.sinks,
                checkpoint_path=self.out_dir / CHECKPOINT if trainer.checkpoint_every else None,
                checkpoint_meta=self.checkpoint_meta(config),
                adversarial=parts.adversarial, robust=parts.robust,
            )
        except Diverged as exc:
            status, diverged_epoch, history = "diverged", exc.epoch, exc.history
            log.warning("run diverged at epoch %d (loss not finite); recorded as 'diverged' (%s)",
                        exc.epoch, DIVERGED_HINT)
        except BaseException:
            self.abandon(training)
            raise
        return self.finish(parts, config, training, history, status, diverged_epoch, checkpoint_error)

    @staticmethod
    def checkpoint_meta(config: dict) -> dict:
        """What the run's checkpoints carry to tell its experiment from another."""
        return {"experiment": experiment_key(config)}

    def start(self, parts: Parts) -> _Training:
        """Write noise.npz (and detect.npz) and open the sinks: the run is about to train."""
        out_dir, split, noisy, trainer = self.out_dir, parts.split, parts.noisy, parts.trainer
        training = _Training(sinks=[], best=None)
        write_with_atomic(out_dir / "noise.npz", lambda f: np.savez_compressed(
            f,
            y_noisy=noisy.y_noisy.numpy(),
            is_noisy=noisy.is_noisy.numpy(),
            y_clean=split.pool_labels().cpu().numpy(),
            expected_T=noisy.expected_T,
            realized_T=noisy.realized_T,
            train_idx=split.train_idx.cpu().numpy(),
            val_idx=split.val_idx.cpu().numpy(),
        ), sync=False)  # every start writes it again: a machine's crash before the summary loses nothing
        save_detection(out_dir, parts.detection)
        progress = trainer.progress if self.progress is None else self.progress
        training.sinks = build_sinks(self.cfg, out_dir, self.choices, progress)
        if "best" in kept(trainer.save_weights):
            training.best = BestWeights(parts.model, out_dir, parts.loss_fn)
            training.sinks.append(training.best)
        return training

    @staticmethod
    def abandon(training: _Training) -> None:
        """Close the sinks of a training that ends without a summary."""
        for sink in training.sinks:
            try:
                sink.close(None)
            except Exception as exc:  # noqa: BLE001 -- the original error matters more
                log.warning("%s failed to finish: %s", type(sink).__name__, exc)

    def finish(self, parts: Parts, config: dict, training: _Training, history: list[dict],
               status: str = "completed", diverged_epoch: int | None = None,
               checkpoint_error: str | None = None, provenance_extra: dict | None = None) -> dict:
        """Evaluate the trained model (unless diverged), save its weights, close the sinks, write
        summary.json and remove the checkpoint; return the summary. ``provenance_extra`` joins the
        provenance (a pack's size: the summary's keys stay those of a lone run)."""
        cfg, out_dir, started, best = self.cfg, self.out_dir, training.started, training.best
        trainer, split, noisy, noise_model = parts.trainer, parts.split, parts.noisy, parts.noise_model
        sinks = training.sinks
        summary: dict = {"status": status, **self.choices}
        summary.update(
            loss_family=type(parts.loss_fn).family,
            loss_params=parts.loss_fn.hyperparameters(),
            seed=parts.seed,
            noise_seed=int(cfg.noise_seed),
            noise_kind=noise_model.kind,
            noise_rate=getattr(noise_model, "rate", None),
            expected_noise_rate=_expected_rate(noisy.expected_T, split.pool_labels().cpu(),
                                               split.num_classes),
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
            summary.update(evaluate_model(trainer, parts.model, split, parts.calibrators, parts.robust,
                                          parts.loss_fn, smoothed=bool(cfg.get("smooth_ece", False))))
        summary.update(_history_figures(history))
        summary.update({f"reweight_{k}": v for k, v in parts.reweight.summary().items()})
        summary.update(weights_summary(trainer.save_weights, out_dir, parts.model, best,
                                       status == "completed", parts.loss_fn))
        if parts.adversarial.settings():
            summary["adversarial_settings"] = parts.adversarial.settings()
        if parts.detection is not None:
            truth = (split.y_train_noisy != split.y_train).cpu()
            scores = detection_scores(parts.detection, truth, float(truth.double().mean()), noisy.expected_T)
            summary.update({f"detect_{k}": v for k, v in scores.items()})
        if checkpoint_error:
            summary["checkpoint_error"] = checkpoint_error
        if describe_cut(config):  # a smoke test: not a result, and `report --against` says so
            summary["cut_down"] = describe_cut(config)
        stopping = EarlyStopping.from_settings(trainer.early_stopping)
        if stopping is not None:
            summary["early_stopping"] = stopping.record(history, trainer.epochs)
        if getattr(trainer, "resume_notes", None):  # resumed under another thread count or device
            summary["resumed_differently"] = list(trainer.resume_notes)
        summary["wall_time_s"] = time.perf_counter() - started
        summary["overrides"] = list(self.hc.overrides.task)
        summary["provenance"] = {**provenance(trainer.torch_device), **parts.threads.provenance(),
                                 **(provenance_extra or {})}
        summary["config"] = config
        for sink in sinks:
            try:
                sink.close(summary)
            except Exception as exc:  # a tracker's failure must not cost the run its summary
                log.warning("%s failed to finish: %s", type(sink).__name__, exc)
        write_json_atomic(out_dir / "summary.json", summary)
        (out_dir / CHECKPOINT).unlink(missing_ok=True)
        log.info("%s: %s, test acc %.4f, realized noise %.3f -> %s", out_dir.name, status,
                 summary.get("test_acc", float("nan")), noisy.rate, out_dir / "summary.json")
        progress = trainer.progress if self.progress is None else self.progress
        if not self.multirun and progress != "none":  # a sweep's jobs keep to their one line
            print(end_of_run_table(summary, out_dir), flush=True)
        return summary

    # -------------------------------------------------------------- endings

    def _resume_hint(self) -> str:
        if self.multirun:
            return f"rerun the sweep's command with hydra.sweep.dir={self.hc.sweep.dir}"
        hydra = [o for o in self.hc.overrides.hydra if not o.startswith(("hydra.run.dir=", "hydra.mode="))]
        words = ["lossbench", "run", *self.hc.overrides.task, *hydra, f"hydra.run.dir={self.out_dir}"]
        return "resume with: " + " ".join(shlex.quote(w) for w in words)

    def interrupted(self, stop: signals.Interrupted, chain: bool = True) -> float:
        """The job stopped on request: say where and how to resume. ``chain``: hand the signal on to
        a chained handler (submitit's requeue; a pack does it once, for its last member)."""
        reason = signals.stop_reason() or f"received {signals.signal_name(stop.signum)}"
        if stop.checkpoint is not None:
            saved = f"checkpoint saved to {stop.checkpoint}"
        elif (self.out_dir / CHECKPOINT).exists():
            saved = f"the last epoch's checkpoint {self.out_dir / CHECKPOINT} is kept"
        else:
            saved = "nothing to save yet (the run will start over)"
        job = f"job {self.num} " if self.multirun else ""
        self.say(f"{job}stopped ({reason}) {stop.where}; {saved}; {self._resume_hint()}")
        self.outcome("interrupted", checkpoint=str(stop.checkpoint) if stop.checkpoint else None)
        chained = signals.chained_handler(stop.signum) if chain else None
        if chained is not None:  # submitit's preemption handler: it requeues this job and exits
            chained(stop.signum, None)
        if not self.multirun:
            sys.exit(128 + int(stop.signum))
        return float("nan")

    def fail(self, exc: Exception) -> float:
        """The run failed while writing or training: failure.json, the outcome, the one line."""
        if isinstance(exc, OSError) and exc.strerror:
            message = f"cannot write {exc.filename or self.out_dir}: {exc.strerror}"
        else:
            message = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        try:
            path: Path | None = self._write_failure("training", message)
            where = f"details in {path}"
        except OSError as write_error:
            why = write_error.strerror or write_error
            path, where = None, f"failure.json could not be written either ({why})"
        self.outcome("failed", failure=str(path) if path else None, error=message)
        if self.multirun:
            self.say(f"job {self.num} ({self.out_dir}) failed: {message}; {where}; the sweep goes on")
            return float("nan")
        if signals.full_error():
            raise exc
        print(f"lossbench: error: run failed: {message}; {where}", file=sys.stderr, flush=True)
        sys.exit(1)


def _objective(cfg: DictConfig, summary: dict) -> float:
    value = summary.get(cfg.get("objective", "best_val_acc_noisy"))
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _expected_rate(T: np.ndarray, y_clean: torch.Tensor, num_classes: int) -> float:
    """The share of labels the noise model meant to change: sum_i prior_i (1 - T_ii)."""
    prior = np.bincount(y_clean.numpy(), minlength=num_classes) / max(len(y_clean), 1)
    return float(prior @ (1.0 - np.diag(T)))


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

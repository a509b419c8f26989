"""Packed sweeps: which jobs of a multirun can train as one packed model, and running such a pack.

The packed launcher (``hydra/launcher=packed``, hydra_plugins/lossbench_packed_launcher)
plans with ``plan`` and runs each pack with ``run_pack``. A pack's jobs share
the dataset, the model and the trainer settings of ``SHARED_TRAINER``; anything
else (loss, noise, seed, strategy, optimizer, scheduler, logger, grad_clip,
l1) is per job. Every job still goes through Hydra's ``run_job`` and gets its
ordinary run directory, built, summarised and skipped or resumed by the same
functions as a lone run (``lossbench.run``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

log = logging.getLogger("lossbench")

# Trainer settings a pack shares (lossbench.train.packed.SHARED_TRAINER, repeated here so that
# planning needs no torch import; a test keeps the two equal).
SHARED_TRAINER = ("epochs", "batch_size", "eval_batch_size", "device", "precision", "channels_last",
                  "compile", "deterministic", "checkpoint_every")
EXECUTORS = ("local", "submitit_local", "slurm")


def pack_key(config: dict) -> dict:
    """What jobs must have in common to share one packed model (from the resolved task config)."""
    trainer = config.get("trainer", {})
    return {
        "dataset": config.get("dataset"),
        "model": config.get("model"),
        "trainer": {k: trainer.get(k) for k in SHARED_TRAINER},
    }


def unpackable(config: dict) -> str | None:
    """Why a job runs alone whatever shares its key (None: it can join a pack)."""
    trainer = config.get("trainer", {})
    if str(trainer.get("precision")) == "16-mixed":
        return "trainer.precision=16-mixed keeps one loss scale per run"
    if trainer.get("compile"):
        return "trainer.compile=true compiles one model; packs run eagerly"
    target = (config.get("reweight") or {}).get("_target_")
    if target:
        from hydra.utils import get_class

        from lossbench.train.packed import resamples

        try:
            if resamples(get_class(str(target))):
                return f"reweight {target} resamples each epoch"
        except (ImportError, ValueError):
            return None  # the job's own setup reports the unknown class
    return None


@dataclass
class Unit:
    """Jobs (indices into the sweep's batch) that run together: a pack, or one job run as usual."""

    jobs: list[int]
    key: dict | None = None
    reason: str | None = None  # why a lone job is not packed
    splits_by: list[str] = field(default_factory=list)  # settings in which this pack differs from the first

    @property
    def packed(self) -> bool:
        return len(self.jobs) > 1


def plan(configs: Sequence[dict | None], pack_size: int) -> list[Unit]:
    """Group jobs into packs of at most ``pack_size``, in the order they come.

    Jobs with equal ``pack_key`` share a pack (split into chunks of ``pack_size``);
    a job that ``unpackable`` rules out, or whose key no other job shares, runs
    as usual. ``configs[i]`` is None for a job whose config could not be resolved
    before it starts (it runs as usual and reports its own error).
    """
    from lossbench.errors import config_differences

    if int(pack_size) < 1:
        raise ValueError(f"pack_size must be >= 1, got {pack_size}")
    groups: dict[str, list[int]] = {}
    keys: dict[str, dict] = {}
    lone: dict[int, str] = {}
    for i, config in enumerate(configs):
        if config is None:
            lone[i] = "its config cannot be resolved before it starts"
            continue
        reason = unpackable(config)
        if reason:
            lone[i] = reason
            continue
        key = pack_key(config)
        text = json.dumps(key, sort_keys=True, default=str)
        groups.setdefault(text, []).append(i)
        keys[text] = key
    units: list[Unit] = []
    first_key = None
    for text, jobs in groups.items():
        if len(jobs) == 1:
            lone[jobs[0]] = "no other job shares its dataset, model and trainer settings"
            continue
        first_key = first_key or keys[text]
        differs = _groups_named(config_differences(first_key, keys[text]))
        n_packs = -(-len(jobs) // int(pack_size))  # as few packs as pack_size allows, of even sizes
        for chunk in (jobs[p::n_packs] for p in range(n_packs)):
            reason = None if len(chunk) > 1 else f"pack_size={pack_size}"
            units.append(Unit(sorted(chunk), keys[text], reason, differs))
    units += [Unit([i], None, reason) for i, reason in lone.items()]
    return sorted(units, key=lambda u: u.jobs[0])


def _groups_named(keys: list[str]) -> list[str]:
    """Differing keys as a reader names them: ``model`` for any model setting, trainer keys in full."""
    named = [k if k.startswith("trainer.") else k.split(".")[0] for k in keys]
    return list(dict.fromkeys(named))


def describe(units: Sequence[Unit], overrides: Sequence[Sequence[str]],
             initial_job_idx: int = 0) -> list[str]:
    """The plan as lines: each pack with its jobs' overrides, each lone job with the reason."""
    lines = []
    n_packs = sum(u.packed for u in units)
    lines.append(f"{sum(len(u.jobs) for u in units)} jobs: {n_packs} packs, "
                 f"{sum(not u.packed for u in units)} run alone")
    for u in units:
        jobs = ", ".join(f"#{initial_job_idx + i} {' '.join(overrides[i]) or '(no overrides)'}"
                         for i in u.jobs)
        if u.packed:
            split = f"; split from the first pack by {', '.join(u.splits_by)}" if u.splits_by else ""
            lines.append(f"pack of {len(u.jobs)}{split}: {jobs}")
        else:
            lines.append(f"alone ({u.reason}): {jobs}")
    return lines


def plan_json(units: Sequence[Unit], overrides: Sequence[Sequence[str]], initial_job_idx: int = 0) -> dict:
    return {"units": [
        {"jobs": [initial_job_idx + i for i in u.jobs], "overrides": [list(overrides[i]) for i in u.jobs],
         "packed": u.packed, "reason": u.reason, "splits_by": u.splits_by}
        for u in units
    ]}


# --------------------------------------------------------------------------------------------
# running one pack of Hydra jobs


@contextlib.contextmanager
def hydra_job(hydra_cfg: DictConfig) -> Iterator[None]:
    """Make ``hydra_cfg`` (a JobReturn's) the current job's Hydra config for the duration."""
    from hydra.core.hydra_config import HydraConfig

    instance = HydraConfig.instance()
    saved = instance.cfg
    instance.cfg = hydra_cfg
    try:
        yield
    finally:
        instance.cfg = saved


class SharedData:
    """One clean dataset per dataset config for all jobs of a pack, on the CPU and on each device.

    Each job still draws its own noise (``build_data``); its split shares the inputs
    and clean labels with the others, so a pack holds one copy of the images.
    """

    def __init__(self) -> None:
        self.clean: dict[str, Any] = {}
        self.placed: dict[tuple[int, str], Any] = {}

    def data(self, cfg: DictConfig):
        from hydra.utils import instantiate
        from omegaconf import OmegaConf

        from lossbench.run import build_data

        key = json.dumps(OmegaConf.to_container(cfg.dataset, resolve=True), sort_keys=True, default=str)
        if key not in self.clean:
            self.clean[key] = instantiate(cfg.dataset)
        return build_data(cfg, split=self.clean[key])

    def to_device(self, split, device):
        from torch import Tensor

        clean = next((c for c in self.clean.values() if c.x_train is split.x_train), None)
        if clean is None:
            return split.to(device)
        placed_key = (id(clean), str(device))
        if placed_key not in self.placed:
            self.placed[placed_key] = clean.to(device)
        on_device = self.placed[placed_key]
        moved = {}
        for f in fields(split):
            value = getattr(split, f.name)
            if not isinstance(value, Tensor) or f.name in ("train_idx", "val_idx"):
                continue
            shared = value is getattr(clean, f.name)
            moved[f.name] = getattr(on_device, f.name) if shared else value.to(device)
        return replace(split, **moved)


@dataclass
class _Job:
    """One job of a pack between its setup and its summary."""

    ret: Any  # the JobReturn of its run_job
    cfg: DictConfig | None = None
    out_dir: Path | None = None
    parts: Any = None
    member: Any = None
    value: float | None = None  # the objective, once done


def run_pack(
    hydra_context, configs: Sequence[DictConfig], job_dir_key: str = "hydra.sweep.dir",
    after_setup: Callable[[], None] | None = None,
) -> list:
    """Train the jobs of one pack together; return one JobReturn per job, in order.

    Each job is set up inside Hydra's ``run_job`` (its directory, .hydra/ files and
    logging, then ``skip_or_clean`` and ``setup_run``: a finished job is skipped, a
    failing setup writes its failure.json), resumed from its checkpoint like a lone
    run, trained in the pack, and summarised with ``finish_run`` as soon as it ends
    (diverged members at once). If the architecture cannot run packed the jobs
    train one by one instead. ``after_setup`` runs once every job is set up (the
    launcher puts its own logging back: the pack's log lines belong to no one job).
    """
    from hydra.core.utils import JobStatus, run_job

    shared = SharedData()
    jobs: list[_Job] = []
    for config in configs:
        holder: dict = {}
        ret = run_job(hydra_context=hydra_context,
                      task_function=lambda cfg, h=holder: _prepare(cfg, h, shared),
                      config=config, job_dir_key=job_dir_key, job_subdir_key="hydra.sweep.subdir")
        job = _Job(ret=ret, **holder)
        if ret.status == JobStatus.FAILED:
            job.value = float("nan")
        jobs.append(job)
    if after_setup is not None:
        after_setup()
    _train(jobs, shared)
    for job in jobs:
        if job.ret.status != JobStatus.FAILED:
            job.ret.return_value = job.value
            job.ret.status = JobStatus.COMPLETED
    return [job.ret for job in jobs]


def _prepare(cfg: DictConfig, holder: dict, shared: SharedData) -> None:
    """The task function of a pack's job (inside run_job): skip, clean, or set the run up."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from lossbench.run import record_failure, setup_run, skip_or_clean
    from lossbench.train.packed import pending_path

    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    holder.update(cfg=cfg, out_dir=out_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    done = skip_or_clean(cfg, out_dir, multirun)
    if done is not None:
        holder["value"] = done
        return
    if cfg.trainer.force:
        pending_path(out_dir / "checkpoint.pt").unlink(missing_ok=True)
    try:
        holder["parts"] = setup_run(cfg, out_dir, data=shared.data, to_device=shared.to_device,
                                    progress="none")
    except Exception as exc:
        holder["value"] = record_failure(out_dir, exc, multirun)


def _member(job: _Job):
    from lossbench.train.packed import PackMember

    p = job.parts
    for sink in p.sinks:  # trackers that open a run per job keep the pack's runs open side by side
        if hasattr(sink, "reinit"):
            sink.reinit = "create_new"
    return PackMember(
        trainer=p.trainer, model=p.model, loss_fn=p.loss_fn, reweight=p.reweight, optimizer=p.optimizer,
        scheduler=p.scheduler, split=p.split, seed=p.seed, sinks=p.sinks,
        checkpoint_path=p.checkpoint if p.trainer.checkpoint_every else None,
        checkpoint_meta=p.checkpoint_meta, context=lambda: hydra_job(job.ret.hydra_cfg),
    )


def _guard(job: _Job, action: Callable[[], float]) -> None:
    """Run ``action`` in the job's Hydra context; an error becomes the job's failure.json."""
    with hydra_job(job.ret.hydra_cfg):
        try:
            job.value = action()
        except Exception as exc:
            _fail(job, exc)


def _fail(job: _Job, exc: Exception) -> None:
    """Record ``exc`` (being handled) as the job's failure; the job's value becomes NaN."""
    from lossbench.run import record_failure

    with hydra_job(job.ret.hydra_cfg):
        job.value = record_failure(job.out_dir, exc, True)


def _train(jobs: list[_Job], shared: SharedData) -> None:
    from lossbench.errors import ConfigError
    from lossbench.models.packing import NotPackable
    from lossbench.run import RestartFromScratch, _objective, finish_run, setup_run, train_run
    from lossbench.train.packed import MemberResult, fit_pack, pending_path, resolve_pending, restore

    todo = [job for job in jobs if job.value is None and job.parts is not None]
    resolve_pending([job.parts.checkpoint for job in todo if job.parts.trainer.checkpoint_every])
    for job in todo:
        job.member = _member(job)
        try:
            with hydra_job(job.ret.hydra_cfg):
                try:
                    restore(job.member)
                except RestartFromScratch as exc:
                    job.parts = setup_run(job.cfg, job.out_dir, checkpoint_error=str(exc), data=shared.data,
                                          to_device=shared.to_device, progress="none")
                    job.member = _member(job)
        except ConfigError as exc:
            _fail(job, exc)
    todo = [job for job in todo if job.value is None]
    if not todo:
        return

    def alone(job: _Job) -> float:
        return _objective(job.cfg, train_run(job.parts))

    if len(todo) == 1:
        _guard(todo[0], lambda: alone(todo[0]))
        return

    def finish(k: int, result: MemberResult) -> None:
        job = todo[k]

        def summarise() -> float:
            summary = finish_run(job.parts, result.history, result.status, result.diverged_epoch,
                                 extra={"pack_size": len(todo)})
            pending_path(job.parts.checkpoint).unlink(missing_ok=True)
            return _objective(job.cfg, summary)

        _guard(job, summarise)

    try:
        fit_pack([job.member for job in todo], on_finish=finish)
    except NotPackable as exc:
        log.warning("these %d jobs cannot train as one pack (%s); they train one by one", len(todo), exc)
        for job in todo:
            _guard(job, lambda job=job: alone(job))
    except Exception as exc:
        for job in todo:
            if job.value is None:
                for sink in job.parts.sinks:
                    sink.close(None)
                _fail(job, exc)
    except BaseException:
        for job in todo:
            if job.value is None:
                for sink in job.parts.sinks:
                    sink.close(None)
        raise

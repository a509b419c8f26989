"""Packed sweeps: which jobs of a multirun can train as one packed model, and running such a pack.

The packed launcher (``hydra/launcher=packed``, hydra_plugins/lossbench_packed_launcher)
plans with ``plan`` and runs each pack with ``run_pack``. A pack's jobs share
the dataset, the model and the trainer settings of ``SHARED_TRAINER``; anything
else (loss, noise, seed, strategy, optimizer, scheduler, logger, grad_clip,
l1, threads, save_weights, calibrators) is per job. Every job still goes
through Hydra's ``run_job`` and gets its ordinary run directory: it is locked,
checked, set up, written and summarised by the same code as a lone run
(the phases of ``lossbench.lifecycle.run._Job``), so its summary has the keys of a lone
run's (the pack's size is in its provenance).

Not packed (they run as ordinary jobs, the plan says why): adversarial
training (``adversarial`` other than none: its inputs are per member),
robust evaluation (``attack`` other than none: per-epoch attacks), detection
(``detect`` other than none: it trains models of its own before the run),
strategies that resample each epoch, losses of another shape (set- or
batch-level values, trainable parameters, or computed from the head:
``level``, ``trainable``, ``needs_head``), ``trainer.precision=16-mixed`` and
``trainer.compile=true``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
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


# Groups whose non-default choices do not pack: group -> the default's class.
NOT_PACKED = {
    "adversarial": "lossbench.adversarial.training.NoAdversarial",
    "attack": "lossbench.adversarial.evaluation.NoRobustEvaluation",
    "detect": "lossbench.detect.base.NoDetection",
}
WHY_NOT_PACKED = {
    "adversarial": "adversarial training crafts per-member inputs",
    "attack": "robust evaluation attacks each model on its own",
    "detect": "detection trains models of its own before the run",
}


def unpackable(config: dict) -> str | None:
    """Why a job runs alone whatever shares its key (None: it can join a pack)."""
    trainer = config.get("trainer", {})
    for group, plain in NOT_PACKED.items():
        target = (config.get(group) or {}).get("_target_")
        if target and str(target) != plain:
            return f"{group} {str(target).rsplit('.', 1)[-1]}: {WHY_NOT_PACKED[group]}"
    if (trainer.get("early_stopping") or {}).get("patience") is not None:
        return "trainer.early_stopping: early stopping ends each run at its own epoch"
    if trainer.get("limit_train_batches") is not None:
        return "trainer.limit_train_batches caps one run's batches; packs train whole epochs"
    if str(trainer.get("precision")) == "16-mixed":
        return "trainer.precision=16-mixed keeps one loss scale per run"
    if trainer.get("compile"):
        return "trainer.compile=true compiles one model; packs run eagerly"
    loss_target = (config.get("loss") or {}).get("_target_")
    if loss_target:
        from hydra.utils import get_class

        try:
            cls = get_class(str(loss_target))
        except (ImportError, ValueError):
            return None  # the job's own setup reports the unknown class
        if getattr(cls, "level", "sample") != "sample":
            return f"loss {cls.__name__} gives one value per {cls.level}; packs step per-sample losses"
        if getattr(cls, "trainable", False):
            return f"loss {cls.__name__} trains parameters of its own"
        if getattr(cls, "needs_head", False):
            return f"loss {cls.__name__} is computed from the model's head, not its logits"
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
    from lossbench.core.errors import config_differences

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

        from lossbench.data.subset import builder_config
        from lossbench.lifecycle.builders import build_data

        key = json.dumps(OmegaConf.to_container(cfg.dataset, resolve=True), sort_keys=True, default=str)
        if key not in self.clean:
            self.clean[key] = instantiate(builder_config(cfg.dataset))
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
class _Member:
    """One job of a pack between its checks and its summary (its ``lossbench.lifecycle.run._Job`` phases)."""

    ret: Any  # the JobReturn of its run_job
    job: Any = None  # lossbench.lifecycle.run._Job, holding the run directory's lock
    ready: Any = None  # lossbench.lifecycle.run._Ready: checked and built
    training: Any = None  # lossbench.lifecycle.run._Training: records written, sinks open
    member: Any = None  # lossbench.train.packed.PackMember
    value: float | None = None  # the objective, once the job has ended


def run_pack(
    hydra_context, configs: Sequence[DictConfig], job_dir_key: str = "hydra.sweep.dir",
    after_setup: Callable[[], None] | None = None,
) -> list:
    """Train the jobs of one pack together; return one JobReturn per job, in order.

    Each job is opened, checked, set up and written inside Hydra's ``run_job``
    (its directory, config and logging), exactly as a lone job is (a finished
    job is skipped, a refused one writes nothing, a failing setup writes its
    failure.json); the jobs still to train are resumed from their checkpoints,
    trained in the pack, and summarised as soon as each one ends (diverged
    members at once). If the architecture cannot run packed the jobs train one
    by one instead. A stop request checkpoints the running members at a batch
    boundary; each job then ends as an interrupted lone job does. ``after_setup``
    runs once every job is set up (the launcher puts its own logging back: the
    pack's log lines belong to no one job).
    """
    from hydra.core.utils import JobStatus, run_job

    from lossbench.core import signals

    shared = SharedData()
    members: list[_Member] = []
    with signals.handle_signals():
        try:
            for config in configs:
                holder: dict = {}
                ret = run_job(hydra_context=hydra_context,
                              task_function=lambda cfg, h=holder: _prepare(cfg, h, shared),
                              config=config, job_dir_key=job_dir_key, job_subdir_key="hydra.sweep.subdir")
                member = _Member(ret=ret, **holder)
                if ret.status == JobStatus.FAILED:
                    member.value = float("nan")
                if member.value is not None and member.job is not None:  # ended: its directory is free
                    member.job.close()
                members.append(member)
            if after_setup is not None:
                after_setup()
            _train(members)
        finally:
            for member in members:
                if member.job is not None:
                    member.job.close()
    for member in members:
        if member.ret.status != JobStatus.FAILED:
            member.ret.return_value = member.value
            member.ret.status = JobStatus.COMPLETED
    if signals.orphaned():  # a worker whose sweep command died: its jobs are saved; leave now
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + int(signals.stop_requested() or 15))
    return [member.ret for member in members]


def _prepare(cfg: DictConfig, holder: dict, shared: SharedData) -> None:
    """The task function of a pack's job (inside run_job): the lone job's phases up to training."""
    from hydra.core.hydra_config import HydraConfig

    from lossbench.core import signals
    from lossbench.lifecycle.run import CHECKPOINT, _Job, _Ready
    from lossbench.train.packed import pending_path

    job = _Job(cfg, HydraConfig.get(), data=shared.data, to_device=shared.to_device, progress="none")
    holder["job"] = job
    ended = job.open()
    if ended is not None:
        holder["value"] = ended
        return
    try:
        ready = job.check()
        if not isinstance(ready, _Ready):
            holder["value"] = ready
            return
        try:
            job.begin(ready, extra_files=(pending_path(Path(CHECKPOINT)).name,))
            holder["training"] = job.start(ready.parts)
        except signals.Interrupted:
            raise
        except Exception as exc:
            holder["value"] = job.fail(exc)
            return
        holder["ready"] = ready
    except signals.Interrupted as stop:
        holder["value"] = job.interrupted(stop)


def _pack_member(m: _Member):
    from lossbench.lifecycle.run import CHECKPOINT, _Job
    from lossbench.train.packed import PackMember

    p, config = m.ready.parts, m.ready.config
    for sink in m.training.sinks:  # trackers that open a run per job keep the pack's runs open side by side
        if hasattr(sink, "reinit"):
            sink.reinit = "create_new"
    return PackMember(
        trainer=p.trainer, model=p.model, loss_fn=p.loss_fn, reweight=p.reweight, optimizer=p.optimizer,
        scheduler=p.scheduler, split=p.split, seed=p.seed, sinks=m.training.sinks,
        checkpoint_path=m.job.out_dir / CHECKPOINT if p.trainer.checkpoint_every else None,
        checkpoint_meta=_Job.checkpoint_meta(config), context=lambda: hydra_job(m.ret.hydra_cfg),
    )


def _ended(m: _Member, action: Callable[[], float]) -> None:
    """Run ``action`` (the job's ending) in the job's Hydra context; a failure in it is the job's."""
    with hydra_job(m.ret.hydra_cfg):
        try:
            m.value = action()
        except Exception as exc:
            m.value = m.job.fail(exc)


def _rebuild(m: _Member, checkpoint_error: str) -> None:
    """Set a job up again from scratch (its checkpoint was unusable), as a lone job does."""
    from dataclasses import replace as replaced

    m.job.abandon(m.training)
    m.ready = replaced(m.ready, parts=m.job._setup(m.ready.config), checkpoint_error=checkpoint_error)
    m.training = m.job.start(m.ready.parts)


def _alone(m: _Member) -> float:
    """Train one job of the pack on its own, from its open records (the lone job's training)."""
    from lossbench.lifecycle.run import RestartFromScratch

    try:
        summary = m.job._train(m.ready.parts, m.ready.config, m.ready.checkpoint_error, m.training)
    except RestartFromScratch as restart:
        summary = m.job._train(m.job._setup(m.ready.config), m.ready.config, str(restart))
    return m.job.done(summary)


def _train(members: list[_Member]) -> None:
    from lossbench.core import signals
    from lossbench.lifecycle.run import CHECKPOINT, RestartFromScratch
    from lossbench.models.packing import NotPackable
    from lossbench.train.packed import MemberResult, PackInterrupted, fit_pack, pending_path, resolve_pending
    from lossbench.train.packed import restore as restore_member

    todo = [m for m in members if m.value is None and m.ready is not None]
    resolve_pending([m.job.out_dir / CHECKPOINT for m in todo if m.ready.parts.trainer.checkpoint_every])
    for m in todo:
        def restore(m: _Member = m) -> None:
            m.member = _pack_member(m)
            try:
                restore_member(m.member)
            except RestartFromScratch as exc:
                _rebuild(m, str(exc))
                m.member = _pack_member(m)

        with hydra_job(m.ret.hydra_cfg):
            try:
                restore()
            except Exception as exc:
                m.job.abandon(m.training)
                m.value = m.job.fail(exc)
    todo = [m for m in todo if m.value is None]
    if not todo:
        return
    if len(todo) == 1:
        _ended(todo[0], lambda: _alone(todo[0]))
        return

    def finish(k: int, result: MemberResult) -> None:
        m = todo[k]

        def summarise() -> float:
            summary = m.job.finish(m.ready.parts, m.ready.config, m.training, result.history, result.status,
                                   result.diverged_epoch, m.ready.checkpoint_error,
                                   provenance_extra={"pack_size": len(todo)})
            pending_path(m.job.out_dir / CHECKPOINT).unlink(missing_ok=True)
            return m.job.done(summary)

        _ended(m, summarise)

    try:
        fit_pack([m.member for m in todo], on_finish=finish)
    except NotPackable as exc:
        log.warning("these %d jobs cannot train as one pack (%s); they train one by one", len(todo), exc)
        for m in todo:
            _ended(m, lambda m=m: _alone(m))
    except PackInterrupted as stop:
        left = [k for k, m in enumerate(todo) if m.value is None]
        for k in left:
            m, saved = todo[k], stop.saved.get(k)
            m.job.abandon(m.training)
            where = stop.where if saved is not None else "while waiting for its turn in the pack"
            _ended(m, lambda m=m, signum=stop.signum, where=where, saved=saved, last=k == left[-1]:
                   m.job.interrupted(signals.Interrupted(signum, where, saved), chain=last))
    except Exception as exc:
        for m in todo:
            if m.value is None:
                m.job.abandon(m.training)
                with hydra_job(m.ret.hydra_cfg):
                    m.value = m.job.fail(exc)
    except BaseException:
        for m in todo:
            if m.value is None:
                m.job.abandon(m.training)
        raise

"""Packed training: K runs that share data, architecture, batch size and epochs, trained as one model.

Each member keeps what makes it its own run: seed and initialisation, noisy
labels, batch order, augmentation draws and dropout masks (its own generators,
drawn as ``Trainer.fit`` draws them, so its numbers do not depend on its
pack), loss and loss hyperparameters, reweighting strategy and its state,
optimizer, learning rate and scheduler, gradient clipping, L1 coefficient,
sinks, checkpoint and early exit on divergence.
What the members share is the computation: one forward and one backward pass
of a ``PackedModel`` per step, and one evaluation pass per epoch.

The step of member k minimises exactly its unpacked objective
(``lossbench.train.objective.Objective``): the pack's loss is the sum over
running members of ``mean_i w_i l_k(z_ki, y_ki) + l1_k sum |theta_k|``, and
since the members' parameters are disjoint, the gradient of the sum with
respect to member k's parameters is the gradient of its own loss. Members
whose loss has no per-sample state and whose strategy is plain averaging
compute their loss in one call over their rows (identical per-sample values).
Each member's own torch optimizer steps its own parameters, which are views
into the stacked tensors, so any optimizer and scheduler works as it does
unpacked.

Checkpoints are the members' ordinary ``checkpoint.pt`` files, in the layout
``Trainer.fit`` writes and reads (an unpacked run can resume from them too),
written in two phases so that a pack killed while writing resumes every member
from the same epoch: each member's new state goes to ``checkpoint.pt.next``
first, then all are renamed. ``resolve_pending`` finishes (or undoes) an
interrupted commit before resuming. A stop request (``lossbench.core.signals``:
SIGTERM, SIGINT, preemption) is honoured at the next batch boundary as
``Trainer.fit`` honours it: every running member's epoch so far (order,
position, statistics) is committed the same way, then ``PackInterrupted`` is
raised; the members resume from that batch.

Records number epochs from 1, as ``Trainer.fit``'s do (``lossbench.core.sink``).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from lossbench.core import signals
from lossbench.core.errors import ConfigError, config_differences
from lossbench.core.sink import Sink
from lossbench.data.split import Split
from lossbench.data.transforms import BatchTransform
from lossbench.losses.base import Loss
from lossbench.metrics import stacked_epoch_metrics
from lossbench.models.packing import NotPackable, PackedModel
from lossbench.reweight.base import Reweighter
from lossbench.train.checkpoint import (
    CorruptCheckpoint,
    load_checkpoint,
    restore_rng_states,
    rng_states,
    save_checkpoint,
)
from lossbench.train.objective import Objective, clip_norm
from lossbench.train.schedulers import steps_per_batch
from lossbench.train.threads import bitwise_record, warn_resumed_differently
from lossbench.train.trainer import DIVERGED_HINT, RestartFromScratch, Trainer, train_stats

log = logging.getLogger("lossbench")

# Trainer settings every member of a pack must share (the others are per member).
SHARED_TRAINER = ("epochs", "batch_size", "eval_batch_size", "device", "precision", "channels_last",
                  "compile", "deterministic", "checkpoint_every")


def pending_path(path: Path) -> Path:
    """Where a member's next checkpoint waits until every member of the pack has written its own."""
    return Path(path).with_name(Path(path).name + ".next")


def unpackable_trainer(trainer: Trainer) -> str | None:
    """Why a run with these trainer settings cannot join a pack (None: it can)."""
    if trainer.autocast_dtype is torch.float16:
        return "trainer.precision=16-mixed keeps one loss scale per run"
    if trainer.compile:
        return "trainer.compile=true compiles one model; packs run eagerly"
    return None


def resamples(reweight: type | Reweighter) -> bool:
    """Whether a strategy chooses the samples of each epoch (members must step in lockstep)."""
    cls = reweight if isinstance(reweight, type) else type(reweight)
    return getattr(cls, "epoch_indices", Reweighter.epoch_indices) is not Reweighter.epoch_indices


@dataclass
class PackMember:
    """One run of a pack: what ``Trainer.fit`` takes, plus the run's own trainer settings.

    ``context`` is entered around the sinks' ``resume`` and ``start`` (a Hydra job
    puts its own config in place there). ``history``/``start_epoch``/``partial`` and
    the generators are set by ``restore`` for a run that resumes (``partial``: the
    state of an epoch stopped between two batches). The attack generator is never
    drawn from (adversarial training does not pack) but is checkpointed as
    ``Trainer.fit`` checkpoints it.
    """

    trainer: Trainer
    model: nn.Module
    loss_fn: Loss
    reweight: Reweighter
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    split: Split
    seed: int
    sinks: Sequence[Sink] = ()
    checkpoint_path: Path | None = None
    checkpoint_meta: dict | None = None
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    history: list[dict] = field(default_factory=list)
    start_epoch: int = 0
    partial: dict | None = None

    def __post_init__(self) -> None:
        device = self.trainer.torch_device
        self.generator = torch.Generator().manual_seed(int(self.seed))
        self.aug_generator = torch.Generator(device=device).manual_seed(int(self.seed) + 1)
        self.attack_generator = torch.Generator(device=device).manual_seed(int(self.seed) + 2)
        self.dropout_generator = torch.Generator(device=device).manual_seed(int(self.seed) + 3)
        self.bitwise, _ = bitwise_record(device)
        self.trainer.resume_notes = []
        self.scaler = torch.amp.GradScaler(device.type, enabled=False)

    def state_objects(self, copy_out: bool = False) -> dict:
        """What a checkpoint saves; ``copy_out``: tensors copied out of the pack's shared storage."""
        model, optimizer = self.model, self.optimizer
        if copy_out:
            model, optimizer = _ClonedState(model), _ClonedState(optimizer)
        return dict(model=model, optimizer=optimizer, scheduler=self.scheduler, loss=self.loss_fn,
                    scaler=self.scaler)


class PackInterrupted(signals.Interrupted):
    """A pack stopped on request; ``saved`` maps the index of each member whose state was just
    checkpointed (in the list given to ``fit_pack``) to its checkpoint."""

    def __init__(self, signum: int, where: str, saved: dict[int, Path]) -> None:
        super().__init__(signum, where, None)
        self.saved = saved


@dataclass
class MemberResult:
    """How a member ended: ``completed`` or ``diverged`` (at ``diverged_epoch``), with its history."""

    history: list[dict]
    status: str = "completed"
    diverged_epoch: int | None = None


class _ClonedState:
    """A model or optimizer whose ``state_dict`` tensors are copied out: a packed member's
    tensors are views of the whole pack's storage, and ``torch.save`` of a view writes the
    whole storage."""

    def __init__(self, obj) -> None:
        self.obj = obj

    def state_dict(self) -> dict:
        return _cloned(self.obj.state_dict())

    def load_state_dict(self, state: dict) -> None:
        self.obj.load_state_dict(state)


def _cloned(value):
    if isinstance(value, Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: _cloned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cloned(v) for v in value]
    return value


# Optimizers whose update is elementwise (every state tensor has its parameter's shape, or is a
# scalar such as Adam's step): run on stacked parameters they update each member as its own would.
ELEMENTWISE = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.Adamax, torch.optim.NAdam,
               torch.optim.RAdam, torch.optim.RMSprop, torch.optim.Adagrad, torch.optim.Adadelta)


def _hyper(optimizer: torch.optim.Optimizer) -> dict:
    return {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}


class _Stepper:
    """Steps the members' optimizers.

    When every member's optimizer is of one elementwise class (``ELEMENTWISE``) with one
    parameter group and the same hyperparameters, one optimizer of that class steps the
    stacked parameters (the members' optimizers, driven by their schedulers, supply the
    hyperparameters; their state tensors become views of the stacked state, so their
    state_dicts stay theirs). Once the hyperparameters differ (different learning rates
    or schedules), each member's optimizer steps its own parameters (views of the stack).
    """

    def __init__(self, members: Sequence[PackMember], packed: PackedModel) -> None:
        self.members, self.packed = members, packed
        self.params = packed.parameters()
        self.own = [packed.member_parameters(k) for k in range(len(members))]
        opts = [m.optimizer for m in members]
        cls = type(opts[0])
        self.stacked: torch.optim.Optimizer | None = None
        if cls in ELEMENTWISE and all(type(o) is cls and len(o.param_groups) == 1 for o in opts):
            accepted = inspect.signature(cls).parameters
            self.stacked = cls(self.params, **{k: v for k, v in opts[0].defaults.items() if k in accepted})
            self.stacked.defaults.update(opts[0].defaults)
            self.stacked.param_groups[0].update(_hyper(opts[0]))
            self._stack_state()
        self.check(range(len(members)))

    def _stack_state(self) -> None:
        """The members' optimizer state (resumed runs have some) as stacked tensors."""
        assert self.stacked is not None
        for i, p in enumerate(self.params):
            states = [m.optimizer.state.get(self.own[k][i]) for k, m in enumerate(self.members)]
            if not states[0]:
                continue
            self.stacked.state[p] = {
                name: torch.stack([s[name] for s in states]) if _per_element(name, v, self.own[0][i])
                else v.clone() if isinstance(v, Tensor) else v
                for name, v in states[0].items()
            }
        self._link()

    def _link(self) -> None:
        """Point every member's optimizer state at its rows of the stacked state."""
        assert self.stacked is not None
        for i, p in enumerate(self.params):
            state = self.stacked.state.get(p)
            if not state:
                continue
            for k, m in enumerate(self.members):
                m.optimizer.state[self.own[k][i]] = {
                    name: v[k] if _per_element(name, v, p) else v for name, v in state.items()
                }
        self.linked = self._state_ids()

    def _state_ids(self) -> list[int]:
        assert self.stacked is not None
        return [id(v) for p in self.params for v in self.stacked.state.get(p, {}).values()]

    def check(self, running: Sequence[int]) -> None:
        """Choose how the next epoch steps (hyperparameters change only when schedulers step)."""
        if self.stacked is None:
            return
        hyper = _hyper(self.members[running[0]].optimizer) if running else {}
        if all(_hyper(self.members[k].optimizer) == hyper for k in running):
            self.stacked.param_groups[0].update(hyper)
            return
        # from now on every member steps its own optimizer: its scalars (Adam's step) become its own
        for k, m in enumerate(self.members):
            for own in self.own[k]:
                state = m.optimizer.state.get(own)
                if state:
                    m.optimizer.state[own] = {
                        name: v if _per_element(name, v, own) or not isinstance(v, Tensor) else v.clone()
                        for name, v in state.items()
                    }
        self.stacked = None

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self, running: Sequence[int]) -> None:
        if self.stacked is not None:
            self.stacked.step()
            if self.linked != self._state_ids():  # the optimizer made (new) state tensors
                self._link()
            return
        for k in running:
            for own, p in zip(self.own[k], self.params, strict=True):
                own.grad = None if p.grad is None else p.grad[k]
            self.members[k].optimizer.step()


def _per_element(name: str, value, param: Tensor) -> bool:
    """Whether an optimizer state entry holds one value per element of ``param`` (else a scalar: "step")."""
    return isinstance(value, Tensor) and value.shape == param.shape and name != "step"


def _checkpoint_epoch(path: Path) -> int | None:
    try:
        return int(load_checkpoint(path)["epoch"])
    except (CorruptCheckpoint, KeyError, TypeError, ValueError, OSError):
        return None


def resolve_pending(paths: Sequence[Path]) -> None:
    """Finish or undo an interrupted two-phase checkpoint commit of a pack.

    If every member holds the newest epoch E (as ``checkpoint.pt.next`` or already
    renamed), the commit completed its first phase: the pending files are renamed.
    Otherwise the first phase was cut short and the pending files are removed, so
    every member resumes from its last committed checkpoint.
    """
    pending = {p: _checkpoint_epoch(pending_path(p)) for p in map(Path, paths) if pending_path(p).exists()}
    if not pending:
        return
    newest = max((e for e in pending.values() if e is not None), default=None)
    complete = newest is not None and all(
        pending.get(p) == newest or (p not in pending and p.exists() and _checkpoint_epoch(p) == newest)
        for p in map(Path, paths)
    )
    for p in pending:
        if complete and pending[p] == newest:
            _promote(p)
        else:
            pending_path(p).unlink(missing_ok=True)
    log.info("pack checkpoint commit %s (epoch %s)", "completed" if complete else "undone", newest)


def restore(member: PackMember) -> None:
    """Resume ``member`` from its checkpoint, if it has one, as ``Trainer.fit`` resumes: a
    checkpoint of another configuration is a ConfigError (the file stays), an unusable one is
    deleted and RestartFromScratch raised."""
    path = member.checkpoint_path
    if path is None or not Path(path).exists():
        return
    device = member.trainer.torch_device
    try:
        state = load_checkpoint(path, map_location=device)
        meta = member.checkpoint_meta
        if meta is not None and state.get("meta") != meta:
            differs = config_differences(state.get("meta") or {}, meta)
            raise ConfigError(
                f"{path} belongs to a different configuration (differs in "
                f"{', '.join(differs[:5])}); use another output directory or trainer.force=true"
            )
        for key, obj in member.state_objects().items():
            obj.load_state_dict(state[key])
        member.reweight.load_state_dict(state["reweight"])
        restore_rng_states(state["rng"], member.generator, member.aug_generator, member.attack_generator,
                           device, member.dropout_generator)
        member.history = list(state["history"])
        member.start_epoch = int(state["epoch"]) + 1
        member.bitwise, change = bitwise_record(device, state.get("bitwise"))
        member.trainer.resume_notes = member.bitwise["changes"]
        if change:
            warn_resumed_differently(change, path)
        member.partial = state.get("partial")
        batch = member.trainer.batch_size
        where = f"epoch {member.start_epoch + 1}" + (
            f", batch {int(member.partial['next']) // batch}" if member.partial is not None else "")
        log.info("resumed from %s at %s", path, where)
    except ConfigError:
        raise
    except (CorruptCheckpoint, KeyError, RuntimeError, ValueError) as exc:
        log.warning("checkpoint unusable, starting over from scratch: %s", exc)
        Path(path).unlink(missing_ok=True)
        raise RestartFromScratch(str(exc)) from exc


def _snapshot(member: PackMember, history: list[dict], last_epoch: int) -> dict:
    """What ``Trainer.fit`` checkpoints after ``last_epoch`` (0-based), for one member; its tensors
    copied out of the pack's shared storage."""
    device = member.trainer.torch_device
    state = {key: obj.state_dict() for key, obj in member.state_objects(copy_out=True).items()}
    state.update(
        reweight=member.reweight.state_dict(),
        rng=rng_states(member.generator, member.aug_generator, member.attack_generator, device,
                       member.dropout_generator),
        history=history,
        epoch=last_epoch,
        meta=member.checkpoint_meta,
        bitwise=member.bitwise,
    )
    return state


def _fuse_key(loss_fn: Loss, reweight: Reweighter) -> tuple | None:
    """Members with equal keys compute their per-sample losses in one call (None: never fused).

    A loss qualifies when it holds no per-sample state (no index, buffers, parameters
    or inner modules) and the strategy is plain averaging; the key is the loss's class
    and every attribute it set (its hyperparameters).
    """
    if getattr(loss_fn, "needs_index", False) or list(loss_fn.buffers()) or list(loss_fn.parameters()):
        return None
    if list(loss_fn.children()):
        return None
    cls = type(reweight)
    if cls.per_sample_loss is not Reweighter.per_sample_loss or cls.weights is not Reweighter.weights:
        return None
    internal = set(vars(nn.Module()))
    attrs = tuple(sorted((k, repr(v)) for k, v in vars(loss_fn).items() if k not in internal))
    return (type(loss_fn), attrs)


class _PackObjective:
    """The pack's loss: sum over running members of their ``Objective`` on their rows."""

    def __init__(self, members: Sequence[PackMember], packed: PackedModel, transform: BatchTransform) -> None:
        self.objectives = [Objective(m.loss_fn, m.reweight, transform, m.trainer.l1) for m in members]
        self.keys = [_fuse_key(m.loss_fn, m.reweight) for m in members]
        self.l1 = torch.tensor([float(m.trainer.l1) for m in members], device=members[0].trainer.torch_device)
        self.packed = packed
        self.needs_features = any(o.needs_features for o in self.objectives)
        self.set_running(range(len(members)))

    def set_running(self, running: Sequence[int]) -> None:
        groups: dict = {}
        self.singles = []
        for k in running:
            if self.keys[k] is None:
                self.singles.append(k)
            else:
                groups.setdefault(self.keys[k], []).append(k)
        self.fused = [ks for ks in groups.values() if len(ks) > 1]
        self.singles += [ks[0] for ks in groups.values() if len(ks) == 1]
        self.penalised = [k for k in running if self.objectives[k].l1]
        device = self.l1.device
        # None: the group is every member in order (its rows need no gathering)
        self.fused_index = [None if ks == list(range(len(self.keys))) else torch.tensor(ks, device=device)
                            for ks in self.fused]
        self.penalised_index = torch.tensor(self.penalised, device=device, dtype=torch.long)

    def __call__(self, logits: Tensor, features: Tensor | None, target: Tensor,
                 index: Tensor) -> tuple[Tensor, Tensor]:
        """(the pack's loss, per-sample losses [K, B] detached; zeros for members not running)."""
        k_all, b = logits.shape[0], logits.shape[1]
        rows: list[Tensor | None] = [None] * k_all
        terms = []
        for ks, sel in zip(self.fused, self.fused_index, strict=True):
            rows_of = (lambda t: t) if sel is None else (lambda t, sel=sel: t[sel])
            feats = None if features is None else rows_of(features).flatten(0, 1)
            per_sample = self.objectives[ks[0]].per_sample(
                rows_of(logits).flatten(0, 1), rows_of(target).flatten(), feats, rows_of(index).flatten()
            ).view(len(ks), b)
            terms.append(per_sample.mean(1).sum() * self.objectives[ks[0]].scale(b))
            if sel is None:  # one group of every member: the rows are the pack's
                return (terms[0] if not self.penalised else terms[0] + self._penalty()), \
                    per_sample.detach().float()
            for row, k in zip(per_sample.detach().unbind(0), ks, strict=True):
                rows[k] = row
        for k in self.singles:
            loss, per_sample = self.objectives[k].reduce(
                logits[k], target[k], None if features is None else features[k], index[k]
            )
            terms.append(loss)
            rows[k] = per_sample.detach()
        if self.penalised:
            terms.append(self._penalty())
        zeros = logits.new_zeros(b, dtype=torch.float32)
        per_sample = torch.stack([zeros if r is None else r.float() for r in rows])
        return torch.stack(terms).sum(), per_sample

    def _penalty(self) -> Tensor:
        """sum over penalised members of l1_k sum |theta_k| (``l1_penalty`` of each member's weights)."""
        sel = self.penalised_index
        penalty = torch.stack([p[sel].abs().flatten(1).sum(1) for p in self.packed.parameters()]).sum(0)
        return (self.l1[sel] * penalty).sum()


def check_pack(members: Sequence[PackMember]) -> None:
    """Raise ValueError if the members cannot share one computation, NotPackable if the
    settings they share rule packing out."""
    if not members:
        raise ValueError("a pack needs at least one member")
    first = members[0]
    for name in SHARED_TRAINER:
        values = {str(getattr(m.trainer, name)) for m in members}
        if len(values) > 1:
            raise ValueError(f"members of a pack must share trainer.{name}; got {', '.join(sorted(values))}")
    reason = unpackable_trainer(first.trainer)
    if reason:
        raise NotPackable(reason)
    for k, m in enumerate(members):
        if resamples(m.reweight):
            raise NotPackable(f"member {k}'s strategy {type(m.reweight).__name__} resamples each epoch")
        s, s0 = m.split, first.split
        if s.x_train is not s0.x_train and (s.x_train.shape != s0.x_train.shape
                                            or not torch.equal(s.x_train, s0.x_train)):
            raise ValueError(f"member {k} trains on other inputs than member 0; a pack shares one dataset")
        if not torch.equal(s.y_train, s0.y_train):
            raise ValueError(f"member {k} has other clean labels than member 0; a pack shares one dataset")


def fit_pack(
    members: Sequence[PackMember],
    on_finish: Callable[[int, MemberResult], None] | None = None,
) -> list[MemberResult]:
    """Train every member for ``trainer.epochs`` epochs; members that resume from different
    points (epoch, and batch for an epoch stopped midway) train as sub-packs, one after another.

    ``on_finish(k, result)`` is called as soon as member k is done (a diverged member
    at once, while the others go on). Raises NotPackable (before any training) when
    the architecture cannot run packed, PackInterrupted on a stop request.
    """
    members = list(members)
    check_pack(members)
    results: list[MemberResult | None] = [None] * len(members)

    def finish(k: int, result: MemberResult) -> None:
        results[k] = result
        if on_finish is not None:
            on_finish(k, result)

    epochs = members[0].trainer.epochs

    def start_of(m: PackMember) -> tuple[int, int]:
        return m.start_epoch, -1 if m.partial is None else int(m.partial["next"])

    for start in sorted({start_of(m) for m in members}):
        group = [k for k, m in enumerate(members) if start_of(m) == start]
        if start[0] >= epochs:  # trained to the end before the pack stopped: only the summary is missing
            for k in group:
                finish(k, MemberResult(list(members[k].history)))
            continue
        try:
            _fit_group([members[k] for k in group], start[0], lambda j, r, group=group: finish(group[j], r))
        except PackInterrupted as stop:
            raise PackInterrupted(stop.signum, stop.where, {group[j]: p for j, p in stop.saved.items()}) \
                from None
    return [r for r in results if r is not None]


def _batch_inputs(transform: BatchTransform, x_raw: Tensor, members: Sequence[PackMember]) -> Tensor:
    """Model input [K, B, ...] from raw rows [K, B, ...]: each member's augmentation from its own
    generator, as ``Trainer.fit`` draws it; without augmentation one pass over all rows."""
    if transform.augment is None:
        return transform(x_raw.flatten(0, 1), train=True).unflatten(0, x_raw.shape[:2])
    return torch.stack([transform(x_raw[k], train=True, generator=m.aug_generator)
                        for k, m in enumerate(members)])


@torch.no_grad()
def _predict(packed: PackedModel, trainer: Trainer, x: Tensor, transform: BatchTransform) -> Tensor:
    """Float32 logits [K, N, C] of every member on ``x`` in eval mode (eval_batch_size rows per pass)."""
    was_training = packed.training
    packed.train(False)
    chunk = max(1, trainer.eval_batch_size // packed.size)
    out = []
    for i in range(0, len(x), chunk):
        with trainer.autocast():
            out.append(packed.shared(transform(x[i : i + chunk], train=False)).float())
    packed.train(was_training)
    return torch.cat(out, dim=1)


def _clip_gradients(grads: list[Tensor], max_norm: Tensor) -> None:
    """Per-member ``clip_grad_norm_``: g_k <- g_k * min(1, c_k / (||g_k|| + 1e-6)), where ||g_k||
    is the 2-norm of member k's gradient over all its parameters (c_k = inf: unclipped)."""
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads])
    coef = (max_norm / (torch.linalg.vector_norm(norms, dim=0) + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.ndim - 1))).to(g.dtype))


def _fit_group(members: list[PackMember], start_epoch: int,
               finish: Callable[[int, MemberResult], None]) -> None:
    trainer = members[0].trainer
    device, epochs, batch_size = trainer.torch_device, trainer.epochs, trainer.batch_size
    split = members[0].split
    transform = BatchTransform(split, trainer.channels_last)
    x_train, y_clean = split.x_train, split.y_train
    y_noisy = torch.stack([m.split.y_train_noisy for m in members])  # [K, n]
    is_noisy = y_noisy != y_clean
    n, size = x_train.shape[0], len(members)

    packed = PackedModel([m.model for m in members])
    packed.generators = [m.dropout_generator for m in members]  # each member's masks from its own stream
    objective = _PackObjective(members, packed, transform)
    probe = transform(x_train[: min(batch_size, n)], train=False)
    packed.train()
    packed.probe(probe.unsqueeze(0).expand(size, *probe.shape).contiguous(), objective.needs_features)

    stepper = _Stepper(members, packed)
    clip = [clip_norm(m.trainer.grad_clip, m.loss_fn) for m in members]
    max_norm = torch.tensor([math.inf if c is None else float(c) for c in clip], device=device)
    clipping = any(c is not None for c in clip)
    offsets = (torch.arange(size, device=device) * n).view(size, 1)
    seen_loss = torch.zeros(size, n, device=device)
    seen_pred = torch.zeros(size, n, device=device, dtype=torch.long)
    running = list(range(size))
    per_step = [k for k, m in enumerate(members) if steps_per_batch(m.scheduler)]
    histories = [list(m.history) for m in members]
    partial = members[0].partial  # the group's members all stopped at this batch, or none did

    for m in members:
        with m.context():
            for sink in m.sinks:
                sink.resume(list(m.history))
            for sink in m.sinks:
                sink.start(epochs, start_epoch)
    for epoch in range(start_epoch, epochs):
        started = time.perf_counter()
        for k in running:  # functions of the epoch: calling them again on a mid-epoch resume is safe
            members[k].loss_fn.on_epoch_start(epoch, epochs)
            members[k].reweight.on_epoch_start(epoch, epochs)
        if partial is not None:  # resume inside this epoch: each member's order and statistics so far
            order = torch.stack([m.partial["order"] for m in members]).to(device)
            first, carried = int(partial["next"]), float(partial["train_seconds"])
            for k, m in enumerate(members):
                seen_loss[k].copy_(m.partial["seen_loss"].to(device))
                seen_pred[k].copy_(m.partial["seen_pred"].to(device))
                m.partial = None
            partial = None
        else:
            orders = []
            for k, m in enumerate(members):
                if k in running:
                    order = m.reweight.epoch_indices(n, m.generator)
                    orders.append(torch.randperm(n, generator=m.generator) if order is None else order)
                else:
                    orders.append(torch.arange(n))
            if len({len(o) for o in orders}) > 1:
                raise RuntimeError("members of a pack drew epochs of different lengths")
            order = torch.stack(orders).to(device, non_blocking=True)
            if order.shape[1] % batch_size == 1 and order.shape[1] > 1:
                order = order[:, :-1]  # a batch of one breaks batch norm
            first, carried = 0, 0.0
        total = order.shape[1]
        lrs = {k: members[k].optimizer.param_groups[0]["lr"] for k in running}
        stepped = [k for k in per_step if k in running]  # schedulers stepped after every step
        for i in range(first, total, batch_size):
            signum = signals.stop_requested()
            if signum is not None:  # a batch boundary: commit every running member's epoch so far
                where = f"at epoch {epoch + 1}, batch {i // batch_size} of {-(-total // batch_size)}"
                seconds = carried + time.perf_counter() - started
                saved = _commit_partial(members, running, histories, epoch, {
                    k: {"next": i, "order": order[k].cpu(), "seen_loss": seen_loss[k].cpu(),
                        "seen_pred": seen_pred[k].cpu(), "train_seconds": seconds} for k in running})
                raise PackInterrupted(signum, where, saved)
            index = order[:, i : i + batch_size]
            x = _batch_inputs(transform, x_train[index], members)
            target = y_noisy.gather(1, index)
            with trainer.autocast():
                out = packed(x, return_features=objective.needs_features)
                logits, features = out if isinstance(out, tuple) else (out, None)
                loss, per_sample = objective(logits, features, target, index)
            stepper.zero_grad()
            loss.backward()
            if clipping:
                _clip_gradients([p.grad for p in packed.parameters()], max_norm)
            stepper.step(running)
            if stepped:
                for k in stepped:  # the records keep the lr of the epoch's last step
                    lrs[k] = members[k].optimizer.param_groups[0]["lr"]
                    _step_scheduler(members[k].scheduler)
                stepper.check(running)
            flat = (index + offsets).view(-1)
            seen_loss.view(-1)[flat] = per_sample.view(-1)
            seen_pred.view(-1)[flat] = logits.detach().argmax(-1).view(-1)
            done = min(i + batch_size, total)
            for k in running:
                for sink in members[k].sinks:
                    sink.batch(epoch + 1, done, total)
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # time the work, not its queueing
        train_seconds = carried + time.perf_counter() - started
        records = {}
        stats = train_stats(order, seen_loss, seen_pred, y_noisy, y_clean, is_noisy)
        for k in list(running):
            m = members[k]
            lr = lrs[k]
            if k not in per_step:
                _step_scheduler(m.scheduler)
            record = {"epoch": epoch + 1, **stats[k]}
            record.update(
                lr=lr,
                train_seconds=train_seconds,
                throughput=total / train_seconds if train_seconds > 0 else float("nan"),
            )
            if not math.isfinite(record["train_loss"]):
                running.remove(k)
                log.warning("pack member %d diverged at epoch %d (loss not finite); recorded as 'diverged' "
                            "(%s), the other %d go on", k, epoch + 1, DIVERGED_HINT, len(running))
                finish(k, MemberResult(histories[k], "diverged", epoch + 1))
                continue
            records[k] = record
        if not running:
            return
        objective.set_running(running)
        stepper.check(running)
        # validation is scored on its noisy labels (val_*) and on its clean ones (val_clean_*), as unpacked
        evals = ((split.x_val, {"val": [m.split.y_val_noisy for m in members],
                                "val_clean": [m.split.y_val for m in members]}),
                 (split.x_test, {"test": [m.split.y_test for m in members]}))
        for x_eval, views in evals:
            if len(x_eval) == 0:
                continue
            logits_eval = _predict(packed, trainer, x_eval, transform)
            if len(running) < size:
                logits_eval = logits_eval[running]
            for prefix, labels in views.items():
                rows = stacked_epoch_metrics(logits_eval, torch.stack([labels[k] for k in running]))
                for k, row in zip(running, rows, strict=True):
                    records[k].update({f"{prefix}_{key}": v for key, v in row.items()})
        seconds = time.perf_counter() - started
        for k in running:
            records[k]["seconds"] = seconds
            histories[k].append(records[k])
            for sink in members[k].sinks:
                sink.epoch(records[k])
        if trainer.checkpoint_every and ((epoch + 1) % trainer.checkpoint_every == 0 or epoch + 1 == epochs):
            _commit([members[k] for k in running], [histories[k] for k in running], epoch)
        if trainer.progress != "none":
            test = [records[k].get("test_acc", float("nan")) for k in running]
            log.info("pack of %d: epoch %d/%d, %d running, test acc %.4f-%.4f, %.2fs", size, epoch + 1,
                     epochs, len(running), min(test), max(test), seconds)
    for k in running:
        finish(k, MemberResult(histories[k]))


def _step_scheduler(scheduler) -> None:
    """Step a member's scheduler; the stacked optimizer stepped for its optimizer (no warning)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
        scheduler.step()


def _commit(members: Sequence[PackMember], histories: Sequence[list[dict]], epoch: int) -> None:
    """Two-phase checkpoint of the running members: every pending file first, then the renames."""
    _write_all([(m, _snapshot(m, history, epoch)) for m, history in zip(members, histories, strict=True)])


def _commit_partial(members: Sequence[PackMember], running: Sequence[int], histories: Sequence[list[dict]],
                    epoch: int, partial: dict[int, dict]) -> dict[int, Path]:
    """Checkpoint the running members inside ``epoch`` (``Trainer.fit``'s mid-epoch layout:
    the last finished epoch, plus ``partial``), two-phase; return where each one went."""
    states = []
    for k in running:
        state = _snapshot(members[k], histories[k], epoch - 1)
        state["partial"] = partial[k]
        states.append((members[k], state))
    _write_all(states)
    return {k: Path(members[k].checkpoint_path) for k in running if members[k].checkpoint_path is not None}


def _write_all(states: Sequence[tuple[PackMember, dict]]) -> None:
    written = []
    for m, state in states:
        if m.checkpoint_path is None:
            continue
        save_checkpoint(pending_path(m.checkpoint_path), state)
        written.append(m.checkpoint_path)
    for path in written:
        _promote(path)


def _promote(path: Path) -> None:
    """Second phase of a commit, for one member: its pending checkpoint becomes its checkpoint."""
    os.replace(pending_path(path), path)

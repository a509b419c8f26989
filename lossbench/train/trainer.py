"""The training loop: device-resident data, index-sliced batches, one code path."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from lossbench.adversarial.evaluation import RobustEvaluation
from lossbench.adversarial.training import AdversarialMethod
from lossbench.core import signals
from lossbench.core.errors import ConfigError, config_differences
from lossbench.core.sink import Sink
from lossbench.data.split import Split
from lossbench.data.subset import batch_limit
from lossbench.data.transforms import BatchTransform
from lossbench.losses.base import Loss
from lossbench.metrics import epoch_metrics
from lossbench.models.dropout import dropout_stream
from lossbench.reweight.base import Reweighter
from lossbench.train.checkpoint import (
    CorruptCheckpoint,
    load_checkpoint,
    restore_rng_states,
    rng_states,
    save_checkpoint,
)
from lossbench.train.early_stopping import EarlyStopping
from lossbench.train.objective import Objective, check_training, clip_norm
from lossbench.train.schedulers import steps_per_batch
from lossbench.train.threads import bitwise_record, check_threads, warn_resumed_differently
from lossbench.train.weights import check_save_weights

log = logging.getLogger("lossbench")

PRECISIONS = {"32": None, "bf16": torch.bfloat16, "16-mixed": torch.float16}
# the precision the model's and a trainable loss's parameters are held and trained in
DTYPES = {"float32": torch.float32, "float64": torch.float64}


# An epoch's checkpoint is fsynced when this many seconds have passed since the last fsynced one: a kill
# or a crash of the process loses nothing either way; fsync (10-20 ms on a VM's disk) guards against the
# machine's own crash, so short epochs skip it (the default digits run: 30 checkpoints, none synced).
SYNC_EVERY_S = 10.0

# what the warning for a diverged run suggests (run.py, packed.py)
DIVERGED_HINT = "a smaller optim.lr or a trainer.grad_clip may let it train"


class Diverged(RuntimeError):
    """The training loss became NaN or infinite in epoch ``epoch`` (1-based, as records number them)."""

    def __init__(self, epoch: int, history: list[dict]) -> None:
        super().__init__(f"training loss is not finite at epoch {epoch}")
        self.epoch = epoch
        self.history = history


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown trainer.device '{name}'; known: auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("trainer.device=cuda but no CUDA device is available; use auto or cpu")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unknown trainer.device '{name}'; known: auto, cpu, cuda, cuda:N")
    return device


def set_determinism(seed: int, deterministic: bool) -> None:
    """Seed torch's global RNGs; ask for deterministic kernels when requested.

    Deterministic mode would also fill every newly allocated tensor with NaN (torch's
    ``fill_uninitialized_memory``, a debugging aid that changes no result); that fill is turned off:
    it cost a write of every activation and gradient buffer, a tenth of a small model's step."""
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = False
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = True


@dataclass
class Trainer:
    """Fits a model with a per-sample loss and a reweighting strategy.

    The split is on ``device`` already; each epoch draws a permutation (or the
    strategy's resampled indices) from a seeded generator and slices batches
    from it. Per epoch it records training loss and accuracy on the noisy
    labels, accuracy on the clean training labels, memorization (share of
    noisy-labelled samples predicted as their noisy label; both measured on the
    training batches as they are seen), validation accuracy, NLL, Brier and ECE
    on the noisy validation labels (val_*) and on the clean ones (val_clean_*),
    the same on the test split, learning rate and seconds.
    """

    epochs: int = 30
    batch_size: int = 64
    eval_batch_size: int = 2048
    device: str = "auto"
    precision: str = "32"
    channels_last: bool = False
    compile: bool = False
    deterministic: bool = True
    progress: str = "auto"
    checkpoint_every: int = 1
    force: bool = False
    grad_clip: float | None = None
    l1: float = 0.0
    threads: int | str = "auto"
    save_weights: str = "final"
    limit_train_batches: int | float | None = None
    early_stopping: dict | None = None
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs <= 0:
            raise ValueError(f"trainer.epochs must be a positive integer, got {self.epochs}")
        if not isinstance(self.batch_size, int) or self.batch_size <= 0:
            raise ValueError(f"trainer.batch_size must be a positive integer, got {self.batch_size}")
        if self.eval_batch_size <= 0:
            raise ValueError(f"trainer.eval_batch_size must be positive, got {self.eval_batch_size}")
        if str(self.precision) not in PRECISIONS:
            raise ValueError(
                f"unknown trainer.precision '{self.precision}'; known: {', '.join(PRECISIONS)}"
            )
        if self.checkpoint_every < 0:
            raise ValueError(f"trainer.checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"trainer.grad_clip must be positive or null, got {self.grad_clip}")
        if not self.l1 >= 0:
            raise ValueError(f"trainer.l1 must be >= 0, got {self.l1}")
        self.threads = check_threads(self.threads)
        check_save_weights(self.save_weights)
        if str(self.dtype) not in DTYPES:
            raise ValueError(f"unknown trainer.dtype '{self.dtype}'; known: {', '.join(DTYPES)}")
        if self.dtype != "float32" and str(self.precision) != "32":
            raise ValueError(f"trainer.dtype={self.dtype} trains in full {self.dtype}; it takes no mixed "
                             f"precision (trainer.precision=32, got {self.precision})")
        self.torch_dtype = DTYPES[str(self.dtype)]
        self.torch_device = resolve_device(self.device)
        self.autocast_dtype = PRECISIONS[str(self.precision)]
        if self.autocast_dtype is torch.float16 and self.torch_device.type != "cuda":
            raise ValueError("trainer.precision=16-mixed needs a CUDA device; on CPU use bf16 or 32")

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.torch_device.type, dtype=self.autocast_dtype)

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """The model on the trainer's device, its parameters in ``dtype`` (float64: as the official
        LegendreTron code, which sets torch's default dtype; inputs are cast by ``Classifier``)."""
        model = model.to(self.torch_device)
        if self.torch_dtype != torch.float32:
            model = model.to(self.torch_dtype)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def prepare_loss(self, loss: Loss) -> Loss:
        """The loss on the trainer's device; a trainable loss's parameters (LegendreTron's link) in
        ``dtype`` like the model's."""
        loss = loss.to(self.torch_device)
        return loss if self.torch_dtype == torch.float32 else loss.to(self.torch_dtype)

    @torch.no_grad()
    def predict(self, model: nn.Module, x: Tensor, transform: BatchTransform,
                loss: Loss | None = None) -> Tensor:
        """Float32 logits for every row of ``x`` in eval mode (through ``loss.prediction_logits``,
        a learned link, when a loss is given)."""
        was_training = model.training
        model.eval()
        link = getattr(loss, "prediction_logits", None)
        out = []
        for i in range(0, len(x), self.eval_batch_size):
            with self.autocast():
                logits = model(transform(x[i : i + self.eval_batch_size], train=False))
            # a float64 model's logits go through the link in float64 (LegendreTron's code)
            logits = logits.float() if logits.dtype != torch.float64 else logits
            out.append(logits.float() if link is None else link(logits).float())
        model.train(was_training)
        return torch.cat(out) if out else torch.empty(0, device=x.device)

    def fit(
        self,
        model: nn.Module,
        loss_fn: Loss,
        reweight: Reweighter,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        split: Split,
        seed: int,
        sinks: Sequence[Sink] = (),
        checkpoint_path: Path | None = None,
        checkpoint_meta: dict | None = None,
        adversarial: AdversarialMethod | None = None,
        robust: RobustEvaluation | None = None,
    ) -> list[dict]:
        """Train for ``self.epochs`` epochs (resuming from ``checkpoint_path`` if valid).

        ``checkpoint_meta`` (plain data, e.g. the experiment's config) is saved
        with each checkpoint; a checkpoint whose meta differs is not resumed
        from: that is a ConfigError, and the checkpoint is left in place.
        ``adversarial`` is the adversarial training method (None: standard
        training); its random starts come from a seeded, checkpointed generator.
        ``robust`` adds its figures to the records of the epochs it is due at.

        When ``signals.stop_requested()`` (SIGTERM, SIGINT, preemption) at a
        batch boundary, the state so far, including the epoch's sample order,
        position and statistics, is checkpointed and ``signals.Interrupted``
        is raised; resuming from it continues bit for bit as if never stopped.
        Sinks get ``resume(history)`` (the records the checkpoint holds, [] on a
        fresh start) before ``start``.
        """
        device = self.torch_device
        transform = BatchTransform(split, self.channels_last)
        step_model = torch.compile(model) if self.compile else model
        scaler = torch.amp.GradScaler(device.type, enabled=self.autocast_dtype is torch.float16)
        generator = torch.Generator().manual_seed(int(seed))
        aug_generator = torch.Generator(device=device).manual_seed(int(seed) + 1)
        attack_generator = torch.Generator(device=device).manual_seed(int(seed) + 2)
        dropout_generator = torch.Generator(device=device).manual_seed(int(seed) + 3)  # the run's own masks
        x_train, y_noisy, y_clean = split.x_train, split.y_train_noisy, split.y_train
        is_noisy = y_noisy != y_clean
        n = len(y_noisy)
        objective = Objective(loss_fn, reweight, transform, self.l1, adversarial)
        check_training(loss_fn, reweight, y_noisy, self.batch_size, device, adversarial)
        history: list[dict] = []
        start_epoch = 0
        seen_loss = torch.zeros(n, device=device)
        seen_pred = torch.zeros(n, device=device, dtype=torch.long)

        state_objects = dict(
            model=model, optimizer=optimizer, scheduler=scheduler, loss=loss_fn, scaler=scaler
        )
        partial: dict | None = None  # a checkpoint taken inside an epoch (on a stop request)
        bitwise, _ = bitwise_record(device)  # threads and device the state is computed with
        self.resume_notes: list[str] = []
        # grad_clip bounds the norm of everything the optimizer steps: the model's and a trainable loss's
        clipped = [p for group in optimizer.param_groups for p in group["params"]]
        max_norm = clip_norm(self.grad_clip, loss_fn)
        per_step = steps_per_batch(scheduler)  # a scheduler stepped after every optimizer step

        def snapshot(last_epoch: int) -> dict:
            state = {key: obj.state_dict() for key, obj in state_objects.items()}
            state.update(
                reweight=reweight.state_dict(),
                rng=rng_states(generator, aug_generator, attack_generator, device, dropout_generator),
                history=history,
                epoch=last_epoch,
                meta=checkpoint_meta,
                bitwise=bitwise,
            )
            return state

        if checkpoint_path is not None and Path(checkpoint_path).exists():
            try:
                state = load_checkpoint(checkpoint_path, map_location=device)
                if checkpoint_meta is not None and state.get("meta") != checkpoint_meta:
                    differs = config_differences(state.get("meta") or {}, checkpoint_meta)
                    raise ConfigError(
                        f"{checkpoint_path} belongs to a different configuration (differs in "
                        f"{', '.join(differs[:5])}); use another output directory or trainer.force=true"
                    )
                missing = sorted(set(loss_fn.state_dict()) - set(state.get("loss") or {}))
                if missing:
                    name = getattr(loss_fn, "registry_name", type(loss_fn).__name__)
                    raise ConfigError(
                        f"{checkpoint_path} holds no {', '.join(missing[:3])}{', ...' * (len(missing) > 3)} "
                        f"for loss '{name}' (a loss's parameters and state belong in every checkpoint); "
                        f"remove it or set trainer.force=true"
                    )
                for key, obj in state_objects.items():
                    obj.load_state_dict(state[key])
                reweight.load_state_dict(state["reweight"])
                restore_rng_states(state["rng"], generator, aug_generator, attack_generator, device,
                                   dropout_generator)
                history = list(state["history"])
                start_epoch = int(state["epoch"]) + 1
                partial = state.get("partial")
                bitwise, change = bitwise_record(device, state.get("bitwise"))
                self.resume_notes = bitwise["changes"]
                if change:
                    warn_resumed_differently(change, checkpoint_path)
                where = f"epoch {start_epoch + 1}" + (f", batch {int(partial['next']) // self.batch_size}"
                                                  if partial is not None else "")
                log.info("resumed from %s at %s", checkpoint_path, where)
            except ConfigError:
                raise
            except (CorruptCheckpoint, KeyError, RuntimeError, ValueError) as exc:
                log.warning("checkpoint unusable, starting over from scratch: %s", exc)
                Path(checkpoint_path).unlink(missing_ok=True)
                raise RestartFromScratch(str(exc)) from exc

        for sink in sinks:
            sink.resume(history)
        for sink in sinks:
            sink.start(self.epochs, start_epoch)
        model.train()
        stopper = EarlyStopping.from_settings(self.early_stopping)
        last_sync = time.perf_counter()
        for epoch in range(start_epoch, self.epochs):
            if stopper is not None and stopper.should_stop(history):  # decided by the records: resumes alike
                best_epoch, best = stopper.best(history)
                log.info("early stopping after epoch %d: %s has not improved on epoch %d's %.4f for %d "
                         "epochs", epoch, stopper.monitor, best_epoch, best, epoch - best_epoch)
                break
            started = time.perf_counter()
            # progress hooks are functions of the epoch, so calling them again on a mid-epoch resume is safe
            loss_fn.on_epoch_start(epoch, self.epochs)
            reweight.on_epoch_start(epoch, self.epochs)
            if partial is not None:  # resume inside this epoch: its batches and statistics so far
                order = partial["order"].to(device)
                sizes = partial.get("sizes")  # recorded when the batches are not batch_size slices
                batches = list(order.split(list(sizes) if sizes else self.batch_size))
                first, carried = int(partial["next"]), float(partial["train_seconds"])
                seen_loss.copy_(partial["seen_loss"].to(device))
                seen_pred.copy_(partial["seen_pred"].to(device))
                partial = None
            else:
                batches = objective.epoch_batches(y_noisy, self.batch_size, generator, device)
                batches = batches[:batch_limit(self.limit_train_batches, len(batches))]
                order = torch.cat(batches)
                first, carried = 0, 0.0
            end = 0
            lr = optimizer.param_groups[0]["lr"]
            for number, index in enumerate(batches):
                i, end = end, end + len(index)  # positions in order of the batch's first and next samples
                if i < first:
                    continue
                signum = signals.stop_requested()
                if signum is not None:  # a batch boundary: save the epoch so far, then stop
                    where = f"at epoch {epoch + 1}, batch {number} of {len(batches)}"
                    if checkpoint_path is None:
                        raise signals.Interrupted(signum, where, None)
                    state = snapshot(epoch - 1)
                    state["partial"] = {
                        "next": i, "order": order.cpu(), "seen_loss": seen_loss.cpu(),
                        "seen_pred": seen_pred.cpu(),
                        "train_seconds": carried + time.perf_counter() - started,
                    }
                    if any(len(b) != self.batch_size for b in batches[:-1]):
                        state["partial"]["sizes"] = [len(b) for b in batches]
                    save_checkpoint(checkpoint_path, state)
                    raise signals.Interrupted(signum, where, Path(checkpoint_path))
                with self.autocast(), dropout_stream(dropout_generator):
                    step = objective(step_model, x_train[index], y_noisy[index], index, aug_generator,
                                     attack_generator)
                loss = step.loss
                optimizer.zero_grad(set_to_none=True)
                if scaler.is_enabled():
                    scaler.scale(loss).backward()
                    if max_norm is not None:
                        scaler.unscale_(optimizer)
                        nn.utils.clip_grad_norm_(clipped, max_norm)
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    if max_norm is not None:
                        nn.utils.clip_grad_norm_(clipped, max_norm)
                    optimizer.step()
                if per_step:  # the record keeps the lr of the epoch's last step
                    lr = optimizer.param_groups[0]["lr"]
                    scheduler.step()
                # two cheap writes per step; the epoch's statistics are reduced once below
                seen_loss[index] = step.per_sample.float()
                seen_pred[index] = step.pred
                for sink in sinks:
                    sink.batch(epoch + 1, end, len(order))
            if device.type == "cuda":
                torch.cuda.synchronize(device)  # time the work, not its queueing
            train_seconds = carried + time.perf_counter() - started
            if not per_step:
                lr = optimizer.param_groups[0]["lr"]
                scheduler.step()
            stats = _train_stats(order, seen_loss, seen_pred, y_noisy, y_clean, is_noisy)
            record = {"epoch": epoch + 1, **stats}
            record.update(
                lr=lr,
                train_seconds=train_seconds,
                throughput=len(order) / train_seconds if train_seconds > 0 else float("nan"),
            )
            if not math.isfinite(record["train_loss"]):
                raise Diverged(epoch + 1, history)
            # validation is scored on its noisy labels (val_*) and on its clean ones (val_clean_*)
            evals = ((split.x_val, {"val": split.y_val_noisy, "val_clean": split.y_val}),
                     (split.x_test, {"test": split.y_test}))
            for x, views in evals:
                if len(x) == 0:
                    continue
                logits_eval = self.predict(model, x, transform, loss_fn)
                for prefix, y in views.items():
                    record.update({f"{prefix}_{k}": v for k, v in epoch_metrics(logits_eval, y).items()})
            if robust is not None and robust.due(epoch, self.epochs):
                record.update(robust.epoch_metrics(model, split, transform, loss_fn))
            record["seconds"] = time.perf_counter() - started
            history.append(record)
            for sink in sinks:
                sink.epoch(record)
            if checkpoint_path is not None and self.checkpoint_every and (
                (epoch + 1) % self.checkpoint_every == 0 or epoch + 1 == self.epochs
            ):
                state = snapshot(epoch)
                sync = time.perf_counter() - last_sync >= SYNC_EVERY_S
                save_checkpoint(checkpoint_path, state, sync=sync)
                last_sync = time.perf_counter() if sync else last_sync
        return history


def _train_stats(order: Tensor, losses: Tensor, pred: Tensor, y_noisy: Tensor, y_clean: Tensor,
                 is_noisy: Tensor) -> dict:
    """Loss, accuracy on noisy and clean labels and memorization over the samples visited (one run)."""
    return train_stats(order[None], losses[None], pred[None], y_noisy[None], y_clean, is_noisy[None])[0]


def train_stats(order: Tensor, losses: Tensor, pred: Tensor, y_noisy: Tensor, y_clean: Tensor,
                is_noisy: Tensor) -> list[dict]:
    """The training figures of K runs at once (a pack's; K = 1 for a lone run): order [K, T] (the
    samples each visited, in its order), losses and pred [K, n] (the last seen per sample), y_noisy
    and is_noisy [K, n], y_clean [n]. The loss is averaged over the visits; accuracy on the noisy and
    on the clean labels and memorization (the share of visited noisy labels predicted) over the
    distinct samples visited. A row does not depend on the others (tests/train/test_packed.py)."""
    visited = torch.zeros_like(is_noisy).scatter_(1, order, True)
    hit = (pred == y_noisy) & visited
    noisy = is_noisy & visited
    count = visited.sum(1).double()
    stats = torch.stack((
        losses.gather(1, order).double().mean(1),
        hit.sum(1).double() / count,
        ((pred == y_clean) & visited).sum(1).double() / count,
        (hit & noisy).sum(1).double() / noisy.sum(1).clamp_min(1),
    )).T.tolist()
    return [dict(zip(("train_loss", "train_acc", "train_clean_acc", "memorization"), row, strict=True))
            for row in stats]


class RestartFromScratch(RuntimeError):
    """The checkpoint could not be used; the caller rebuilds everything and starts over."""

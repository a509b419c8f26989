"""How many intra-op CPU threads a run uses: ``trainer.threads`` (``auto`` or a count).

torch's default (one thread per core) is a poor choice for the small models
lossbench trains on CPU: their operations are too small to split, and on a
machine shared with other work (or with the other jobs of a joblib sweep) the
spare threads wait for busy cores. ``auto`` is a deterministic function of
the model's size, the device, the cores this process may use and the number
of jobs of the sweep that share them, so the same command on the same machine
always gets the same count (CPU results are bit-identical only for the same
thread count and device). The count and why it was chosen go into the
summary's provenance.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor, nn

# The most intra-op threads a run may ask for: far above any machine's cores, far below the counts at which
# OpenMP fails to start its threads (100,000 crashed the process with a segmentation fault).
MAX_THREADS = 1024
# Forward FLOPs of one training batch below which one thread is as fast as several
# (benchmarks/threads.md: the default MLP's 11 MFLOP batches gain nothing from a second thread).
SMALL_BATCH_FLOPS = 2e8


@dataclass(frozen=True)
class ThreadChoice:
    """The intra-op thread count a run uses, the setting it came from and why."""

    threads: int
    setting: str
    reason: str

    def provenance(self) -> dict:
        return {"num_threads": self.threads, "threads_setting": self.setting, "threads_reason": self.reason}


def check_threads(value: object) -> int | str:
    """``trainer.threads`` as the trainer holds it: ``"auto"`` or an int from 1 to ``MAX_THREADS``."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_THREADS:
        raise ValueError(f"trainer.threads must be 'auto' or an integer from 1 to {MAX_THREADS}, "
                         f"got {value!r}")
    return value


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; SLURM and taskset restrict it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def joblib_workers(n_jobs: int, cores: int) -> int:
    """The number of worker processes joblib starts for ``n_jobs`` (-1: every core, -2: all but one)."""
    if n_jobs < 0:
        return max(1, cores + 1 + n_jobs)
    return max(1, n_jobs)


def parallel_jobs(cores: int) -> tuple[int, str]:
    """How many jobs of the current Hydra sweep share this machine's cores, and which launcher says so.

    joblib runs ``hydra.launcher.n_jobs`` jobs at once, the packed launcher ``workers`` packs
    (``executor=local``); submitit's local launcher
    starts every job of the sweep at once (unless ``cpus_per_task`` says how many
    cores each may use); anything else (one run, the basic launcher, a SLURM job
    with its own allocation) runs alone.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return 1, "one run"
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return 1, "one run"
    launcher = hc.launcher
    target = str(launcher.get("_target_", ""))
    if "joblib" in target.lower():
        workers = joblib_workers(int(launcher.get("n_jobs", -1)), cores)
        return min(workers, cores), f"joblib n_jobs={launcher.get('n_jobs')}"
    if target.endswith("PackedLauncher") and str(launcher.get("executor", "local")) == "local":
        workers = int(launcher.get("workers", 1) or 1)
        return min(max(1, workers), cores), f"packed workers={workers}"
    if target.endswith("LocalLauncher"):
        per_task = launcher.get("cpus_per_task")
        if per_task:
            return max(1, cores // int(per_task)), f"submitit_local cpus_per_task={per_task}"
        return cores, "submitit_local (every job at once)"
    return 1, "one job per allocation"


def _layer_flops(module: nn.Module, output: Tensor) -> int:
    """2 x the multiply-adds of a linear or convolution layer that produced ``output``."""
    if isinstance(module, nn.Linear):
        return 2 * module.in_features * output.numel()
    if isinstance(module, nn.modules.conv._ConvNd):
        per_output = module.in_channels // module.groups
        for k in module.kernel_size:
            per_output *= k
        return 2 * per_output * output.numel()
    return 0


@torch.no_grad()
def forward_flops(model: nn.Module, x: Tensor) -> int:
    """FLOPs of one forward pass of ``model`` on ``x``: 2 per multiply-add of its linear and
    convolution layers (what dominates the models here), counted with forward hooks.

    The model runs once in eval mode and is left as it was. (torch's FlopCounterMode
    counts every operator, but importing it loads torch._dynamo: seconds per run.)
    """
    total = 0

    def count(module: nn.Module, inputs, output) -> None:
        nonlocal total
        if isinstance(output, Tensor):
            total += _layer_flops(module, output)

    hooks = [m.register_forward_hook(count) for m in model.modules()
             if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return total


def choose_threads(setting: int | str, *, device_type: str, batch_flops: float | None, cores: int,
                   jobs: int = 1, jobs_reason: str = "one run", omp_limit: int | None = None) -> ThreadChoice:
    """The thread count for ``trainer.threads=setting``.

    A number is used as given. ``auto``: each job's share of the cores,
    ``max(1, cores // jobs)``, capped by ``OMP_NUM_THREADS`` when it is set; on
    CPU, models whose training batch costs under SMALL_BATCH_FLOPS forward FLOPs
    get one thread (splitting their small operations costs more than it gains).
    """
    setting = check_threads(setting)
    if setting != "auto":
        return ThreadChoice(int(setting), str(setting), "set by trainer.threads")
    share = max(1, cores // max(1, jobs))
    reason = f"{cores} cores, {jobs} job(s) at once ({jobs_reason})"
    if omp_limit is not None and omp_limit < share:
        share, reason = omp_limit, f"{reason}; OMP_NUM_THREADS={omp_limit}"
    if device_type == "cpu" and batch_flops is not None and batch_flops < SMALL_BATCH_FLOPS:
        return ThreadChoice(1, "auto", f"small model ({batch_flops / 1e6:.3g} MFLOP per batch forward)")
    if device_type == "cpu" and batch_flops is not None:
        reason = f"{reason}; {batch_flops / 1e9:.3g} GFLOP per batch forward"
    return ThreadChoice(share, "auto", reason)


def _omp_limit() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def apply_threads(setting: int | str, model: nn.Module, sample: Tensor | None, batch_size: int,
                  device: torch.device) -> ThreadChoice:
    """Choose the thread count for this run (``sample``: one model input, for the model's cost)
    and set it with ``torch.set_num_threads``."""
    batch_flops = None
    if check_threads(setting) == "auto" and device.type == "cpu" and sample is not None:
        batch_flops = forward_flops(model, sample) / max(1, len(sample)) * batch_size
    cores = available_cores()
    jobs, why = parallel_jobs(cores)
    choice = choose_threads(setting, device_type=device.type, batch_flops=batch_flops, cores=cores,
                            jobs=jobs, jobs_reason=why, omp_limit=_omp_limit())
    torch.set_num_threads(choice.threads)
    return choice


# What bit-identical CPU results depend on beyond the config (which a checkpoint's meta pins).
BITWISE = ("num_threads", "device", "torch")


def bitwise_record(device: torch.device, saved: dict | None = None) -> tuple[dict, str | None]:
    """(what a checkpoint records about how its state was computed, what changed since ``saved``).

    The record holds the thread count, the device and torch's version, and ``changes``: every
    resume so far that changed one of them (a run resumed under another thread count is not
    bit-identical to an uninterrupted one; its summary says so as ``resumed_differently``).
    """
    now = {"num_threads": torch.get_num_threads(), "device": str(device), "torch": str(torch.__version__)}
    saved = saved if isinstance(saved, dict) else {}
    changes = [str(c) for c in saved.get("changes") or []]
    changed = [f"{k} {saved[k]} -> {now[k]}" for k in BITWISE
               if saved.get(k) is not None and saved[k] != now[k]]
    change = ", ".join(changed) or None
    if change:
        changes.append(change)
    return {**now, "changes": changes}, change


def warn_resumed_differently(change: str, path: object) -> None:
    import logging

    logging.getLogger("lossbench").warning(
        "resumed from %s with %s: the results are not bit-identical to an uninterrupted run (they need the "
        "checkpoint's thread count, trainer.threads or OMP_NUM_THREADS, and device); the summary records it "
        "as resumed_differently", path, change)

"""The packed launcher: compatible jobs of a sweep train as one packed model; each keeps its own run.

    lossbench run -m hydra/launcher=packed hydra.launcher.pack_size=32 \
        loss=ce,gce,nce_rce noise=sym20,sym40,sym60,sym80 seed=0,1,2

Jobs that share dataset, model and the pack's trainer settings are grouped
(``lossbench.lifecycle.packs.plan``), at most ``pack_size`` to a pack; the others run as
usual, one Hydra job each, and the plan says why (among them every job with
adversarial training, a robust evaluation or a detector: ``lossbench.lifecycle.packs.NOT_PACKED``).
``executor=local`` trains the packs on this machine, ``workers`` of them at once (each
in a process forked from this one when ``workers`` > 1: two packs side by side use a
2-core CPU's second core). Packs go wide through submitit: ``executor=slurm`` submits
one SLURM array task per pack, ``executor=submitit_local`` starts every pack as a
process of this machine (``devices`` hands them GPUs round-robin).
This module is imported by Hydra's plugin scan on every start, so it imports
neither torch nor lossbench at the top.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

EXECUTORS = ("local", "submitit_local", "slurm")


def check_settings(pack_size: Any, executor: Any, devices: Any, workers: Any = 1) -> str | None:
    """None if the launcher's settings can work, else one line: the key, the value, what is allowed."""
    if isinstance(pack_size, bool) or not isinstance(pack_size, int) or pack_size < 1:
        return f"hydra.launcher.pack_size must be an integer >= 1, got {pack_size!r}"
    if executor not in EXECUTORS:
        return f"hydra.launcher.executor must be one of {', '.join(EXECUTORS)}, got {executor!r}"
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        return f"hydra.launcher.workers must be an integer >= 1 (packs at once here), got {workers!r}"
    if workers > 1 and executor != "local":
        return f"hydra.launcher.workers is for executor=local, got executor={executor}"
    if devices is not None:
        if executor != "submitit_local":
            return f"hydra.launcher.devices is for executor=submitit_local, got executor={executor}"
        if not isinstance(devices, Sequence) or isinstance(devices, str) or not devices:
            return f"hydra.launcher.devices must be a non-empty list of GPU ids, got {devices!r}"
    return None


def _remove_ledger() -> None:
    """Undo what the sweep's ledger callback (lossbench.lifecycle.callbacks) made before the launcher started:
    its ledger folder, and the sweep folder if nothing else is in it."""
    import shutil

    from lossbench.core import signals

    ledger = os.environ.pop(signals.LEDGER_ENV, None)
    if not ledger:
        return
    shutil.rmtree(ledger, ignore_errors=True)
    try:
        Path(ledger).parent.rmdir()
    except OSError:  # not empty: the sweep folder held something before
        pass


class PackedLauncher(Launcher):
    """Hydra launcher that trains the compatible jobs of a sweep as packs (see the module doc)."""

    def __init__(self, pack_size: int = 32, dry_run: bool = False, executor: str = "local",
                 devices: Any = None, submitit: Any = None, slurm: Any = None, workers: int = 1) -> None:
        devices = OmegaConf.to_container(devices) if OmegaConf.is_config(devices) else devices
        problem = check_settings(pack_size, executor, devices, workers)
        if problem:  # a traceback would bury the one line
            _remove_ledger()
            print(f"lossbench: error: {problem}", file=sys.stderr)
            sys.exit(2)
        self.pack_size = int(pack_size)
        self.dry_run = bool(dry_run)
        self.executor = executor
        self.workers = int(workers)
        self.devices = list(devices) if devices is not None else None
        self.submitit = OmegaConf.to_container(submitit, resolve=True) if OmegaConf.is_config(submitit) \
            else dict(submitit or {})
        self.slurm = OmegaConf.to_container(slurm, resolve=True) if OmegaConf.is_config(slurm) \
            else dict(slurm or {})
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    # -- planning ------------------------------------------------------------------------

    def _job_config(self, overrides: Sequence[str], idx: int) -> DictConfig:
        assert self.hydra_context is not None and self.config is not None
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = idx
            sweep_config.hydra.job.num = idx
        return sweep_config

    @staticmethod
    def _resolved(sweep_config: DictConfig) -> dict | None:
        """The job's task config, resolved as the job will see it (None if that needs the job running)."""
        import copy

        from hydra.core.hydra_config import HydraConfig
        from omegaconf import read_write

        instance = HydraConfig.instance()
        saved = instance.cfg
        try:
            HydraConfig.instance().set_config(sweep_config)
            task = copy.deepcopy(sweep_config)
            with read_write(task), open_dict(task):
                del task["hydra"]
            return OmegaConf.to_container(task, resolve=True)
        except Exception as exc:  # an interpolation only the running job can resolve
            log.debug("cannot resolve a job's config before it runs: %s", exc)
            return None
        finally:
            instance.cfg = saved

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from lossbench.core.io import write_text_atomic
        from lossbench.lifecycle.packs import describe, plan, plan_json

        setup_globals()
        assert self.config is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        overrides = [list(o) for o in job_overrides]
        configs = [self._job_config(o, initial_job_idx + i) for i, o in enumerate(overrides)]
        units = plan([self._resolved(c) for c in configs], self.pack_size)
        shown = [filter_overrides(o) for o in overrides]
        for line in describe(units, shown, initial_job_idx):
            log.info(line)
        name = "packs.json" if initial_job_idx == 0 else f"packs-{initial_job_idx}.json"
        plan_text = json.dumps(plan_json(units, shown, initial_job_idx), indent=2) + "\n"
        write_text_atomic(sweep_dir / name, plan_text)
        if self.dry_run:
            log.info("dry run: nothing trained (the plan is in %s)", sweep_dir / name)
            return [JobReturn(overrides=o, status=JobStatus.COMPLETED, _return_value=None) for o in overrides]
        work = [[(overrides[i], initial_job_idx + i) for i in u.jobs] for u in units]
        if self.executor == "local" and self.workers > 1 and len(work) > 1:
            results = forked(self.run_unit, work, self.workers, sweep_dir)
        elif self.executor == "local":
            results = [self.run_unit(unit) for unit in work]
        else:
            results = self._submit(work)
        by_job = {idx: ret for unit, rets in zip(work, results, strict=True)
                  for (_, idx), ret in zip(unit, rets, strict=True)}
        return [by_job[initial_job_idx + i] for i in range(len(overrides))]

    # -- running -------------------------------------------------------------------------

    def run_unit(self, unit: list[tuple[list[str], int]]) -> list[JobReturn]:
        """One pack (or one lone job, run as Hydra runs any job) in this process."""
        from lossbench.lifecycle.packs import run_pack

        assert self.hydra_context is not None and self.config is not None and self.task_function is not None
        for overrides, idx in unit:
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
        configs = [self._job_config(o, idx) for o, idx in unit]
        if len(configs) == 1:
            rets = [run_job(hydra_context=self.hydra_context, task_function=self.task_function,
                            config=configs[0], job_dir_key="hydra.sweep.dir",
                            job_subdir_key="hydra.sweep.subdir")]
        else:
            def own_logging() -> None:
                assert self.config is not None
                configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)

            rets = run_pack(self.hydra_context, configs, after_setup=own_logging)
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return rets

    def __call__(self, unit: list[tuple[list[str], int]], singleton_state: dict, device: str | None) -> list:
        """The submitit job: one unit in a fresh process (GPU ``device`` when devices are handed out)."""
        if device is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = str(device)
        Singleton.set_state(singleton_state)
        setup_globals()
        return self.run_unit(unit)

    def _submit(self, work: list[list[tuple[list[str], int]]]) -> list[list[JobReturn]]:
        import submitit

        assert self.config is not None
        params = dict(self.submitit)
        folder = params.pop("folder", f"{self.config.hydra.sweep.dir}/.submitit/%j")
        cluster = "local" if self.executor == "submitit_local" else "slurm"
        executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        params = {k: v for k, v in params.items() if v is not None}
        if cluster == "slurm":
            params.update({f"slurm_{k}": v for k, v in self.slurm.items() if v is not None})
        executor.update_parameters(**params)
        devices = [self.devices[i % len(self.devices)] if self.devices else None for i in range(len(work))]
        state = Singleton.get_state()
        jobs = executor.map_array(self, work, [state] * len(work), devices)
        log.info("submitted %d units through submitit (%s); waiting for them", len(jobs), cluster)
        return [job.results()[0] for job in jobs]


def forked(run: Any, units: list, workers: int, folder: Path) -> list:
    """``[run(unit) for unit in units]``, ``workers`` units at once, each in a process forked from this one.

    A child writes its result (pickled) to a file of its own in ``folder`` and leaves with ``os._exit``;
    the parent reads it once the child is done. A stop request reaches the children as it reaches any
    sweep's (the signal itself, and the ledger's STOP file they poll): units not started yet still
    start, and their jobs end at once as not started.
    """
    import pickle
    import tempfile

    results: list = [None] * len(units)
    running: dict[int, tuple[int, str]] = {}
    pending = list(enumerate(units))
    while pending or running:
        while pending and len(running) < workers:
            index, unit = pending.pop(0)
            handle, path = tempfile.mkstemp(prefix=".lossbench-pack-", suffix=".pkl", dir=folder)
            os.close(handle)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the child: run the unit, leave its result, never return into Hydra
                code = 0
                try:
                    payload: Any = ("ok", run(unit))
                except BaseException as exc:  # noqa: BLE001 -- a SystemExit too: the parent reports it
                    payload, code = ("error", f"{type(exc).__name__}: {exc}"), 1
                try:
                    with open(path, "wb") as f:
                        pickle.dump(payload, f)
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            running[pid] = (index, path)
        pid, _ = os.wait()
        if pid not in running:
            continue
        index, path = running.pop(pid)
        try:
            with open(path, "rb") as f:
                kind, value = pickle.load(f)
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            kind, value = "error", f"the pack's process left no result ({type(exc).__name__})"
        finally:
            Path(path).unlink(missing_ok=True)
        if kind != "ok":
            raise RuntimeError(f"a pack failed in its process: {value}")
        results[index] = value
    return results

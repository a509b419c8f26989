"""Weights & Biases: one W&B run per lossbench job, beside the local files."""

from __future__ import annotations

import logging
import re
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lossbench.core.io import jsonable, read_jsonl
from lossbench.core.sink import Sink

log = logging.getLogger("lossbench")

MODES = ("online", "offline", "disabled")
# Seconds to wait for a TCP/HTTP answer from the W&B server before going offline.
PROBE_TIMEOUT_S = 5.0
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to one level with dotted keys: {"loss": {"gamma": 2}} -> {"loss.gamma": 2}.

    Lists stay values; an empty dict stays as an empty dict.
    """
    if not isinstance(tree, dict) or (prefix and not tree):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def run_config(cfg: DictConfig, choices: dict) -> dict[str, Any]:
    """The W&B run config: the resolved config flattened with dots, plus each group's choice.

    ``loss`` holds the choice ("focal") and ``loss.gamma`` its parameter, so the
    runs table filters on both.
    """
    flat = flatten(OmegaConf.to_container(cfg, resolve=True))
    flat.update({group: str(choice) for group, choice in choices.items()})
    return flat


def sweep_group(sweep_dir: Path) -> str:
    """The default group of a multirun: its directory's name (``date_time`` for Hydra's default layout)."""
    sweep_dir = Path(sweep_dir)
    if _DATE.fullmatch(sweep_dir.parent.name):
        return f"{sweep_dir.parent.name}_{sweep_dir.name}"
    return sweep_dir.name


def _class_attr(target: str | None, attr: str) -> str | None:
    """A class attribute (a loss's ``family``, a noise model's ``kind``) from its ``_target_``."""
    if not target:
        return None
    from hydra.utils import get_class

    try:
        value = getattr(get_class(str(target)), attr, None)
    except (ImportError, ValueError):
        return None
    return str(value) if value else None


def _reachable(base_url: str, timeout: float) -> str | None:
    """None if the W&B server answers at all (any HTTP status), else why not."""
    try:
        urllib.request.urlopen(urllib.request.Request(base_url, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError) as exc:
        return f"cannot reach {base_url} ({getattr(exc, 'reason', exc)})"
    return None


def reliability_image(summary: dict) -> Any | None:
    """The test set's reliability diagrams (before calibration, and after each of the run's
    calibrators fitted on the clean and on the noisy validation labels) as a wandb.Image.

    The figure is the one `lossbench report --plots` draws for a run, from the
    summary's ``test_reliability`` and ``test_reliability_<calibrator>_<view>``
    bins; None when the summary has none (a diverged run).
    """
    if not isinstance(summary.get("test_reliability"), dict):
        return None
    import wandb
    from PIL import Image

    from lossbench.report.collect import RunRecord
    from lossbench.report.plots import plot_reliability

    with tempfile.TemporaryDirectory() as tmp:
        [png] = [p for p in plot_reliability([RunRecord(summary=summary)], Path(tmp)) if p.suffix == ".png"]
        with Image.open(png) as image:
            image.load()
            return wandb.Image(image.copy(), caption="reliability diagram (test set)")


def class_accuracy_table(summary: dict) -> Any | None:
    """Per-class test accuracy as a wandb.Table (class, accuracy), from ``test_class_acc``."""
    values = summary.get("test_class_acc")
    if not isinstance(values, (list, tuple)) or not values:
        return None
    import wandb

    names = summary.get("class_names")
    rows = [[c, str(names[c]) if isinstance(names, list) and c < len(names) else str(c), acc]
            for c, acc in enumerate(values)]
    return wandb.Table(columns=["class", "name", "accuracy"], data=rows)


class WandbSink(Sink):
    """Mirrors one job to one W&B run: config, per-epoch metrics, summary, diagrams.

    The run starts in ``start`` and finishes in ``close`` (exit code 1 when the
    job failed), so every job of a multirun has its own run. Settings come from
    ``cfg.logger`` (conf/logger/wandb.yaml). In online mode, if the server cannot
    be reached or refuses the run, the job goes on with an offline run and a
    warning that says how to upload it later (``wandb sync``). ``reinit`` is wandb's:
    a job finishes a run left open by the one before it; jobs trained together as one
    pack (``lossbench.train.packed``) keep their runs open side by side ("create_new").
    """

    reinit: str = "finish_previous"

    def __init__(self, cfg: DictConfig, out_dir: Path, choices: dict) -> None:
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.choices = dict(choices)
        self.settings = cfg.logger
        mode = str(self.settings.get("mode", "online"))
        mode = {"dryrun": "offline", "run": "online"}.get(mode, mode)  # wandb's older names
        if mode not in MODES:
            raise ValueError(f"unknown logger.mode '{mode}'; known: {', '.join(MODES)}")
        self.mode = mode
        self.run: Any = None
        self.logged_keys: set[str] = set()
        # wandb's own console output (banners, its run summary); cfg.verbose=true shows it
        self.verbose = bool(cfg.get("verbose", False))
        self.fell_back = False

    # -- what the run is called and where it belongs --------------------------------

    def init_kwargs(self) -> dict[str, Any]:
        """Arguments of ``wandb.init`` for this job (without mode)."""
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        s = self.settings
        hc = HydraConfig.get() if HydraConfig.initialized() else None
        multirun = hc is not None and hc.mode == RunMode.MULTIRUN
        group = s.get("group") or (sweep_group(Path(hc.sweep.dir)) if multirun else None)
        loss, noise = self.choices.get("loss", "loss"), self.choices.get("noise", "noise")
        name = s.get("name") or f"{loss}-{noise}-s{self.cfg.get('seed', 0)}"
        if multirun and not s.get("name"):
            name += f"-j{hc.job.num}"
        tags = [
            _class_attr(self.cfg.loss.get("_target_"), "family"),
            _class_attr(self.cfg.noise.get("_target_"), "kind"),
            *[str(t) for t in (s.get("tags") or [])],
        ]
        return dict(
            project=s.get("project") or "lossbench",
            entity=s.get("entity") or None,
            group=group,
            name=name,
            job_type=str(self.choices.get("dataset", "")) or None,
            tags=list(dict.fromkeys(t for t in tags if t)),
            notes=s.get("notes") or None,
            config=run_config(self.cfg, self.choices),
            dir=str(Path(s.get("dir") or self.out_dir)),
            reinit=self.reinit,
        )

    def _settings(self, **extra: Any) -> Any:
        """wandb's settings: silent (no banners, no run summary on the console) unless ``verbose``."""
        import wandb

        return wandb.Settings(silent=not self.verbose, **extra)

    def _init(self) -> Any:
        import wandb

        kwargs = self.init_kwargs()
        Path(kwargs["dir"]).mkdir(parents=True, exist_ok=True)
        if self.mode != "online":
            return wandb.init(mode=self.mode, settings=self._settings(), **kwargs)
        reason = None
        if not wandb.login(prompt=False, verify=False):
            reason = "no W&B credentials (run `wandb login` or set WANDB_API_KEY)"
        if reason is None:
            reason = _reachable(wandb.setup().settings.base_url, PROBE_TIMEOUT_S)
        if reason is None:
            timeout = float(self.settings.get("init_timeout", 90))
            try:
                return wandb.init(mode="online", settings=self._settings(init_timeout=timeout), **kwargs)
            except wandb.Error as exc:
                reason = str(exc).strip().splitlines()[0]
        run = wandb.init(mode="offline", settings=self._settings(), **kwargs)
        self.fell_back = True
        log.warning(
            "W&B online logging unavailable: %s. This job logs to an offline W&B run instead; "
            "upload it later with:  wandb sync %s", reason, run.settings.sync_dir,
        )
        return run

    # -- the Sink protocol ----------------------------------------------------------

    def start(self, num_epochs: int, start_epoch: int = 0) -> None:
        """Start the W&B run; a resumed job first replays the epochs it already has on disk."""
        self.run = self._init()
        if start_epoch > 0:
            done = {r["epoch"]: r for r in read_jsonl(self.out_dir / "metrics.jsonl")
                    if isinstance(r.get("epoch"), int) and r["epoch"] <= start_epoch}
            for epoch in sorted(done):
                self.epoch(done[epoch])

    def epoch(self, record: dict) -> None:
        self.logged_keys.update(record)
        self.run.log(jsonable(record), step=int(record["epoch"]))  # as metrics.jsonl has it

    def close(self, summary: dict | None) -> None:
        """Finish the run: summary, reliability diagram and per-class table, or exit code 1."""
        if self.run is None:
            return
        run, self.run = self.run, None
        if summary is None:
            run.summary["status"] = "failed"
            run.finish(exit_code=1)
            return
        media = {}
        makers = (("reliability_diagram", reliability_image), ("class_accuracy", class_accuracy_table))
        for key, make in makers:
            try:
                media[key] = make(summary)
            except Exception as exc:  # a mirror must not cost the run its summary.json
                log.warning("W&B: no %s for this run (%s: %s)", key, type(exc).__name__, exc)
        run.log({k: v for k, v in media.items() if v is not None}, commit=True)
        final = {k: v for k, v in jsonable(summary).items() if k != "config"}  # as summary.json has it
        # The W&B summary is the lossbench summary: drop the last-epoch values wandb kept for
        # per-epoch keys that the summary does not have (train_loss, lr, ...).
        for key in sorted(self.logged_keys - final.keys()):
            try:
                del run.summary[key]
            except KeyError:
                pass
        run.summary.update(final)
        run.finish(exit_code=0)
        self._say_where(run)

    def _say_where(self, run: Any) -> None:
        """One line instead of wandb's banners: where the run is, and how to upload an offline one."""
        if self.verbose or self.mode == "disabled":
            return
        if self.mode == "offline" or self.fell_back:
            if not self.fell_back:  # the fallback's warning already named the command
                log.info("W&B offline run in %s; upload it with:  wandb sync %s",
                         run.settings.sync_dir, run.settings.sync_dir)
        else:
            log.info("W&B run: %s", getattr(run, "url", None) or run.id)

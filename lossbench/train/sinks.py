"""Where per-epoch metrics go: metrics.jsonl, the console, W&B."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from lossbench.io import append_jsonl, read_jsonl
from lossbench.sink import Sink

log = logging.getLogger("lossbench")


class JsonlSink(Sink):
    """One JSON object per epoch, appended to ``metrics.jsonl``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def start(self, num_epochs: int, start_epoch: int = 0) -> None:
        """Keep only the epochs a resumed run will not redo (a killed run may have
        logged an epoch after its last checkpoint)."""
        kept = [r for r in read_jsonl(self.path) if r.get("epoch", num_epochs) < start_epoch]
        self.path.unlink(missing_ok=True)
        for record in kept:
            append_jsonl(self.path, record)

    def epoch(self, record: dict) -> None:
        append_jsonl(self.path, record)


class PlainProgress(Sink):
    """One log line per epoch (used when output is not a terminal)."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.num_epochs = 0

    def start(self, num_epochs: int, start_epoch: int = 0) -> None:
        self.num_epochs = num_epochs

    def epoch(self, r: dict) -> None:
        log.info(
            "%sepoch %d/%d  loss %.4f  train acc %.4f  val acc %.4f  test acc %.4f  lr %.3g  %.2fs",
            f"[{self.name}] " if self.name else "",
            r["epoch"] + 1, self.num_epochs, r["train_loss"], r["train_acc"],
            r.get("val_acc", float("nan")), r["test_acc"], r["lr"], r["seconds"],
        )


class RichProgress(Sink):
    """A rich progress bar over epochs with the latest loss and accuracies."""

    def __init__(self, name: str = "") -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self.name = name or "train"
        self.task = None

    def start(self, num_epochs: int, start_epoch: int = 0) -> None:
        self.progress.start()
        self.task = self.progress.add_task(
            self.name, total=num_epochs, completed=start_epoch, stats=""
        )

    def epoch(self, r: dict) -> None:
        stats = (
            f"loss {r['train_loss']:.4f} acc {r['train_acc']:.3f} "
            f"val {r.get('val_acc', float('nan')):.3f} test {r['test_acc']:.3f}"
        )
        self.progress.update(self.task, completed=r["epoch"] + 1, stats=stats)

    def close(self, summary: dict | None) -> None:
        self.progress.stop()


def progress_sink(mode: str, name: str = "") -> Sink | None:
    """The progress display for ``trainer.progress`` (auto|rich|plain|none)."""
    if mode == "none":
        return None
    if mode == "rich" or (mode == "auto" and sys.stdout.isatty()):
        return RichProgress(name)
    if mode in ("plain", "auto"):
        return PlainProgress(name)
    raise ValueError(f"unknown trainer.progress '{mode}'; known: auto, rich, plain, none")


def build_sinks(cfg, out_dir: Path, choices: dict, progress: str) -> list[Sink]:
    """metrics.jsonl always; the progress display; W&B when ``logger.wandb`` is set."""
    sinks: list[Sink] = [JsonlSink(Path(out_dir) / "metrics.jsonl")]
    display = progress_sink(str(progress), name=Path(out_dir).name)
    if display is not None:
        sinks.append(display)
    if cfg.logger.get("wandb", False):
        from lossbench.tracking.wandb import WandbSink

        sinks.append(WandbSink(cfg, Path(out_dir), choices))
    return sinks

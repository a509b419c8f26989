"""Where per-epoch metrics go: metrics.jsonl, the log (run.log), the console display, W&B.

Epochs are numbered from 1 everywhere (records, log lines, display, W&B steps):
epoch k is the model after k passes over the training set.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from lossbench.core.io import append_jsonl, write_jsonl_atomic
from lossbench.core.sink import Sink

log = logging.getLogger("lossbench")
# Per-epoch (and, on long epochs, per-interval) lines: always logged, so run.log is complete;
# the console shows them only with the plain display.
progress_log = logging.getLogger("lossbench.progress")


class JsonlSink(Sink):
    """One JSON object per epoch, appended to ``metrics.jsonl``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def resume(self, history: list[dict]) -> None:
        """Rebuild the file from the checkpoint's records, atomically (temporary file, fsync, rename).

        The checkpoint, not the file, is the truth: a killed run may have logged
        an epoch after its last checkpoint, and the file may have been truncated
        or damaged. At every moment the file holds either the old records or
        exactly the checkpoint's, so a second interruption loses nothing. Not fsynced: the
        checkpoint is the truth, and the next start rewrites the file from it again.
        """
        write_jsonl_atomic(self.path, history, sync=False)

    def epoch(self, record: dict) -> None:
        append_jsonl(self.path, record)


# A long epoch gets a log line with its progress this often (seconds).
LOG_EVERY_S = 30.0
# The rich display redraws at most this often (seconds); batch updates in between cost a clock read.
RICH_EVERY_S = 0.1


def _eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def epoch_line(r: dict, num_epochs: int) -> str:
    """The log line of one epoch record (1-based ``epoch``)."""
    return (
        f"epoch {r['epoch']}/{num_epochs}  loss {r['train_loss']:.4f}  train acc {r['train_acc']:.4f}  "
        f"val acc {r.get('val_acc', float('nan')):.4f}  test acc {r.get('test_acc', float('nan')):.4f}  "
        f"lr {r.get('lr', float('nan')):.3g}  {r.get('throughput', float('nan')):,.0f} samples/s  "
        f"{r.get('seconds', float('nan')):.2f}s"
    )


class EpochLog(Sink):
    """Logs one line per epoch to ``lossbench.progress`` (and so to the run's log file), and on
    epochs longer than LOG_EVERY_S a line with the epoch's progress, throughput and ETA."""

    def __init__(self, name: str = "", every_s: float = LOG_EVERY_S) -> None:
        self.prefix = f"[{name}] " if name else ""
        self.every_s = every_s
        self.num_epochs = 0
        self.epoch_started = self.last = 0.0

    def start(self, num_epochs: int, start_epoch: int = 0) -> None:
        self.num_epochs = num_epochs
        self.epoch_started = self.last = time.perf_counter()

    def batch(self, epoch: int, done: int, total: int) -> None:
        now = time.perf_counter()
        if now - self.last < self.every_s or done >= total:
            return
        self.last = now
        rate = done / max(now - self.epoch_started, 1e-9)
        progress_log.info("%sepoch %d/%d  %d/%d samples  %s samples/s  epoch ETA %s", self.prefix, epoch,
                          self.num_epochs, done, total, f"{rate:,.0f}", _eta((total - done) / rate))

    def epoch(self, r: dict) -> None:
        progress_log.info("%s%s", self.prefix, epoch_line(r, self.num_epochs))
        self.epoch_started = self.last = time.perf_counter()


class _HideProgressLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(progress_log.name)


def _console_handlers() -> list[logging.StreamHandler]:
    """The root logger's handlers that write to a terminal stream (not to a file)."""
    return [h for h in logging.getLogger().handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
            and getattr(h, "stream", None) in (sys.stdout, sys.stderr)]


class ConsoleQuiet(Sink):
    """Keeps the progress lines off the console (they still reach run.log): ``trainer.progress=none``."""

    def __init__(self) -> None:
        self.filter = _HideProgressLines()
        self.handlers: list[logging.StreamHandler] = []

    def start(self, num_epochs: int, start_epoch: int = 0) -> None:
        self.handlers = _console_handlers()
        for handler in self.handlers:
            handler.addFilter(self.filter)

    def epoch(self, record: dict) -> None:
        pass

    def close(self, summary: dict | None) -> None:
        for handler in self.handlers:
            handler.removeFilter(self.filter)
        self.handlers = []


class RichProgress(ConsoleQuiet):
    """Two rich bars: the run's epochs (with its ETA and the latest figures) and the current
    epoch's samples (with throughput and the epoch's ETA), updated from the batch hook.

    While the bars are shown, the console's log lines are printed above them (other
    messages stay readable) and the per-epoch lines go to run.log only.
    """

    def __init__(self, name: str = "", console=None) -> None:
        super().__init__()
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
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.name = name or "train"
        self.run_task = self.epoch_task = None
        self.num_epochs = 0
        self.current, self.epoch_started, self.last = 0, 0.0, 0.0
        self.streams: list[tuple[logging.StreamHandler, object]] = []

    def start(self, num_epochs: int, start_epoch: int = 0) -> None:
        super().start(num_epochs, start_epoch)
        self.num_epochs = num_epochs
        originals = [(h, h.stream) for h in self.handlers]
        out = sys.stdout
        self.progress.start()  # on a terminal, sys.stdout/stderr now print above the live bars
        for handler, stream in originals:
            handler.setStream(sys.stdout if stream is out else sys.stderr)
            self.streams.append((handler, stream))
        self.epoch_started = time.perf_counter()
        self.run_task = self.progress.add_task(f"{self.name} epochs", total=num_epochs,
                                               completed=start_epoch, stats="")
        self.epoch_task = self.progress.add_task(f"epoch {start_epoch + 1}", total=None, stats="")

    def batch(self, epoch: int, done: int, total: int) -> None:
        now = time.perf_counter()
        if epoch != self.current:
            self.current, self.last = epoch, 0.0
            self.progress.reset(self.epoch_task, total=total, description=f"epoch {epoch}", stats="")
        if now - self.last < RICH_EVERY_S and done < total:
            return
        self.last = now
        rate = done / max(now - self.epoch_started, 1e-9)
        self.progress.update(self.epoch_task, completed=done, total=total, stats=f"{rate:,.0f} samples/s")
        self.progress.update(self.run_task, completed=epoch - 1 + done / total)

    def epoch(self, r: dict) -> None:
        stats = (
            f"loss {r['train_loss']:.4f} acc {r['train_acc']:.3f} "
            f"val {r.get('val_acc', float('nan')):.3f} test {r.get('test_acc', float('nan')):.3f}"
        )
        self.progress.update(self.run_task, completed=r["epoch"], stats=stats)
        self.epoch_started = time.perf_counter()

    def close(self, summary: dict | None) -> None:
        self.progress.stop()
        for handler, stream in self.streams:
            handler.setStream(stream)
        self.streams = []
        super().close(summary)


PROGRESS_MODES = ("auto", "rich", "plain", "none")


def _terminal() -> bool:
    return sys.stdout.isatty()


def _parallel_sweep() -> bool:
    """True inside a job that shares the terminal with other jobs running at the same time."""
    from lossbench.train.threads import available_cores, parallel_jobs

    return parallel_jobs(available_cores())[0] > 1


def progress_sinks(mode: str, name: str = "") -> list[Sink]:
    """The log lines and the console display for ``trainer.progress`` (auto|rich|plain|none).

    The per-epoch lines always reach the log (run.log). ``auto``: rich bars on a
    terminal, plain lines otherwise and in jobs of a parallel sweep (joblib,
    submitit), whose displays would overwrite each other; ``none``: nothing on the console.
    """
    if mode not in PROGRESS_MODES:
        raise ValueError(f"unknown trainer.progress '{mode}'; known: {', '.join(PROGRESS_MODES)}")
    if mode == "auto":
        mode = "rich" if _terminal() and not _parallel_sweep() else "plain"
    display: list[Sink] = {"rich": lambda: [RichProgress(name)], "none": lambda: [ConsoleQuiet()],
                           "plain": lambda: []}[mode]()
    return [EpochLog(name), *display]

"""Per-epoch records in the files other tools read: ``metrics.csv`` (pandas, spreadsheets) and
TensorBoard event files (``tensorboard --logdir``), beside metrics.jsonl, which stays the source of truth.

``logger=csv`` / ``logger=tensorboard`` (or ``logger.csv=true`` / ``logger.tensorboard=true`` beside
another logger). The CSV is rewritten whole, atomically, at every epoch, with one column per key
any record has (first seen, first placed), so it is always a complete table. TensorBoard gets
one scalar per numeric key at step = epoch, and the summary's numeric figures under
``summary/`` at the last epoch; a resumed run purges the steps it trains again.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from lossbench.core.io import atomic_file
from lossbench.core.sink import Sink

CSV_NAME = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"


def _scalar(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class CsvSink(Sink):
    """``metrics.csv``: one row per epoch, one column per record key."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.records: list[dict] = []

    def resume(self, history: list[dict]) -> None:
        self.records = [dict(r) for r in history]
        if self.records:
            self._write()

    def epoch(self, record: dict) -> None:
        self.records.append(dict(record))
        self._write()

    def _write(self) -> None:
        columns = list(dict.fromkeys(k for r in self.records for k, v in r.items()
                                     if _scalar(v) or isinstance(v, str) or v is None))
        with atomic_file(self.path, "w") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            for record in self.records:
                writer.writerow({k: ("" if v is None else v) for k, v in record.items() if k in columns})


class TensorBoardSink(Sink):
    """TensorBoard event files in ``<run>/tensorboard`` (torch.utils.tensorboard's SummaryWriter)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.writer = None
        self.last_step = 0

    def resume(self, history: list[dict]) -> None:
        self.last_step = int(history[-1]["epoch"]) if history else 0

    def start(self, num_epochs: int, start_epoch: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter

        purge = start_epoch + 1 if start_epoch else None  # steps after the checkpoint are trained again
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge)

    def epoch(self, record: dict) -> None:
        step = int(record["epoch"])
        for key, value in record.items():
            if key != "epoch" and _scalar(value) and math.isfinite(value):
                self.writer.add_scalar(key, value, global_step=step)
        self.last_step = step
        self.writer.flush()

    def close(self, summary: dict | None) -> None:
        if self.writer is None:
            return
        for key, value in (summary or {}).items():
            if _scalar(value) and math.isfinite(value) and key != "epochs":
                self.writer.add_scalar(f"summary/{key}", value, global_step=self.last_step)
        self.writer.close()
        self.writer = None

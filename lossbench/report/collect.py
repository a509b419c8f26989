"""Runs as data: find run directories, read what each left behind, one DataFrame row per run."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lossbench.io import read_json, read_jsonl

STATUSES = ("completed", "diverged", "failed", "unfinished")
# Hydra choices a run records (summary.json and failure.json keep them at top level).
CHOICE_KEYS = ("dataset", "model", "loss", "noise", "reweight", "optim", "scheduler", "trainer", "logger")
# Summary entries that are not table material: long text, or nested data read from the record itself.
# Reliability bins (test_reliability, test_reliability_ts_noisy, ...) are skipped by their prefix.
_SKIPPED = {"traceback", "config", "choices"}
_SKIPPED_PREFIX = "test_reliability"


@dataclass
class RunRecord:
    """What one run left behind, from any source (a local directory, a W&B offline run).

    ``summary``: summary.json, or failure.json, or ``{"status": "unfinished", ...}``
    (see :func:`record_to_row`). ``config``: the run's config as a nested dict.
    ``run_dir``: where the run lives, if anywhere. ``history``: per-epoch records
    when the source holds them; None means "read run_dir/metrics.jsonl".
    """

    summary: dict
    config: dict | None = None
    run_dir: str | None = None
    history: list[dict] | None = None


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Every directory at or below ``paths`` that holds ``.hydra/config.yaml``, in natural order."""
    found: dict[Path, None] = {}
    for root in paths:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"no such directory: {root}")
        for config in root.rglob("config.yaml"):
            if config.parent.name == ".hydra":
                found[config.parent.parent.resolve()] = None
    return sorted(found, key=_natural_key)


def _yaml(path: Path, resolve: bool) -> Any:
    from omegaconf import OmegaConf

    node = OmegaConf.load(path)
    if resolve:
        try:
            return OmegaConf.to_container(node, resolve=True)
        except Exception:  # an interpolation that cannot resolve outside the run: keep it as written
            pass
    return OmegaConf.to_container(node, resolve=False)


def read_run(run_dir: str | Path) -> RunRecord:
    """The record of one local run directory.

    summary.json with a status means finished (completed or diverged);
    failure.json means failed; a directory with neither is unfinished (or still
    running), and its choices and overrides come from ``.hydra/``.
    """
    run_dir = Path(run_dir)
    hydra_dir = run_dir / ".hydra"
    summary = read_json(run_dir / "summary.json")
    if summary is None or "status" not in summary:
        summary = read_json(run_dir / "failure.json")
    if summary is None or "status" not in summary:
        summary = {"status": "unfinished"}
        try:
            choices = _yaml(hydra_dir / "hydra.yaml", resolve=False)["hydra"]["runtime"]["choices"]
            summary["choices"] = {k: v for k, v in choices.items() if k in CHOICE_KEYS}
        except (OSError, KeyError, TypeError, ValueError):
            pass
        try:
            summary["overrides"] = list(_yaml(hydra_dir / "overrides.yaml", resolve=False))
        except (OSError, TypeError, ValueError):
            pass
        summary["epochs_logged"] = len(read_jsonl(run_dir / "metrics.jsonl"))
    config = summary.get("config")
    if not isinstance(config, dict):
        try:
            config = _yaml(hydra_dir / "config.yaml", resolve=True)
        except (OSError, ValueError):
            config = None
    return RunRecord(summary=summary, config=config, run_dir=str(run_dir))


def local_records(paths: Iterable[str | Path]) -> list[RunRecord]:
    """The records of every run directory below ``paths``."""
    return [read_run(d) for d in find_run_dirs(paths)]


def _flatten(data: Mapping, prefix: str = "") -> dict[str, Any]:
    """{"loss": {"gamma": 3}} -> {"loss.gamma": 3}; lists become their JSON text."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(list(value))
        else:
            flat[name] = value
    return flat


def _family(loss: Any) -> str | None:
    from lossbench.losses import LOSSES

    return LOSSES.get(loss).family if isinstance(loss, str) and loss in LOSSES else None


def record_to_row(summary: dict | None, config: dict | None, run_dir: str | None) -> dict:
    """One flat DataFrame row from what a run recorded; every source goes through here.

    Input contract:
    - ``summary``: one of
      * summary.json of a finished run: ``status`` "completed" or "diverged", the
        Hydra choices (dataset, model, loss, noise, ...) at top level, scalar
        figures (test_acc, test_ece, best_val_epoch, ...), and optionally
        ``provenance`` (dict), ``overrides`` (list of str), ``config`` (dict);
      * failure.json of a failed run: ``status`` "failed", ``error``, and the
        choices at top level or under ``choices``;
      * for a run with neither (unfinished, or running): ``{"status":
        "unfinished"}``, optionally with ``choices`` and ``overrides``;
      None or a dict without ``status`` counts as unfinished.
    - ``config``: the run's composed config as a nested dict, resolved where
      possible; None falls back to ``summary["config"]``.
    - ``run_dir``: the run's local directory, or None (or an id) for a run that
      has none.

    The row holds ``run_dir``, ``status``, the choices, every scalar of the
    summary (a summary value wins over a config value of the same name),
    ``provenance.*``, ``overrides`` as one space-separated string, and the config
    flattened to dotted keys (``loss.gamma``, ``trainer.epochs``; lists as JSON
    text). Nested data (reliability bins, traceback) stays in the record.
    ``loss_family`` is filled from the loss registry when the summary lacks it.
    """
    summary = dict(summary or {})
    status = summary.get("status") or "unfinished"
    row: dict[str, Any] = {"run_dir": run_dir, "status": status}
    choices = summary.get("choices")
    if isinstance(choices, Mapping):
        row.update({k: v for k, v in choices.items() if not isinstance(v, (Mapping, list))})
    for key, value in summary.items():
        if key in _SKIPPED or key.startswith(_SKIPPED_PREFIX) or key == "status":
            continue
        if key == "overrides" and isinstance(value, list):
            row[key] = " ".join(str(v) for v in value)
        elif isinstance(value, Mapping):
            row.update(_flatten(value, f"{key}."))
        elif not isinstance(value, (list, tuple)):
            row[key] = value
    if config is None and isinstance(summary.get("config"), Mapping):
        config = summary["config"]
    for key, value in _flatten(config or {}).items():
        row.setdefault(key, value)
    if row.get("loss_family") is None:
        row["loss_family"] = _family(row.get("loss"))
    if row.get("noise_rate") is None and row.get("noise.rate") is not None:
        row["noise_rate"] = row["noise.rate"]
    return row


def _as_record(record: RunRecord | Mapping) -> RunRecord:
    if isinstance(record, RunRecord):
        return record
    return RunRecord(record.get("summary") or {}, record.get("config"), record.get("run_dir"),
                     record.get("history"))


def runs_frame(records: Iterable[RunRecord | Mapping]) -> pd.DataFrame:
    """One row per record (``record_to_row``), in the order given; index i is record i."""
    rows = [record_to_row(r.summary, r.config, r.run_dir) for r in map(_as_record, records)]
    frame = pd.DataFrame(rows)
    for column in ("run_dir", "status", "loss_family"):
        if column not in frame:
            frame[column] = pd.Series(dtype=object)
    return frame


def load_history(record: RunRecord) -> list[dict]:
    """Per-epoch records of a run: the record's own, else run_dir/metrics.jsonl."""
    if record.history is not None:
        return record.history
    if record.run_dir is None:
        return []
    return read_jsonl(Path(record.run_dir) / "metrics.jsonl")

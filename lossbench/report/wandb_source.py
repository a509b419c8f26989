"""Run records from Weights & Biases: a project through wandb.Api(), or offline run files on disk.

Both paths end in :func:`wandb_record`, the one conversion from what W&B holds
(summary, flat config, history rows) to the :class:`RunRecord` that
``collect.runs_frame`` turns into the report's DataFrame, the same as for local
run directories. lossbench's W&B sink writes the lossbench summary as the W&B
summary and the resolved config flattened with dots plus each group's choice
as the W&B config (lossbench/tracking/wandb.py); this module undoes that.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lossbench.report.collect import RunRecord, corrupt_summary, summary_problems
from lossbench.report.escape import printable
from lossbench.tracking.wandb_file import RunFile, is_media, read_run, run_files

FINISHED = ("completed", "diverged")
_RUN_TIME = re.compile(r"run-(\d{8}_\d{6})-")


def _visible(data: dict) -> dict:
    """Without wandb's own entries (``_step``, ``_runtime``, ``_wandb``, ...) and media references."""
    return {k: v for k, v in data.items() if not str(k).startswith("_") and not is_media(v)}


def split_config(flat: dict) -> tuple[dict, dict]:
    """A W&B run config (dotted keys plus choices) -> (nested config, choices).

    A key without a dot that also heads dotted keys (``loss`` beside
    ``loss.gamma``) is a group choice; every other key goes into the nested
    config: {"loss": "focal", "loss.gamma": 3, "seed": 0} -> ({"loss": {"gamma":
    3}, "seed": 0}, {"loss": "focal"}).
    """
    heads = {str(key).split(".", 1)[0] for key in flat if "." in str(key)}
    config: dict = {}
    choices: dict = {}
    for key, value in flat.items():
        key = str(key)
        if key == "_wandb":
            continue
        if "." not in key and key in heads and not isinstance(value, dict):
            choices[key] = value
            continue
        node = config
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):  # "a.b" beside "a.b.c": the deeper key wins
                child = node[part] = {}
            node = child
        if not isinstance(node.get(leaf), dict):
            node[leaf] = value
    return config, choices


def wandb_record(summary: dict, config: dict, run_dir: str | None,
                 history: Iterable[dict] | None = None, ids: tuple[str, ...] = ()) -> RunRecord:
    """The RunRecord of one W&B run: summary, flat config and (optionally) history rows as W&B holds them.

    The summary loses wandb's own keys and media references; a run that did not
    finish (failed, killed) gets its choices from the config, as failure.json
    would hold them. History rows keep the logged epochs only. A summary that
    breaks the summary schema (collect.summary_problems) makes a corrupt record.
    """
    summary = _visible(summary if isinstance(summary, dict) else {})
    nested, choices = split_config(config if isinstance(config, dict) else {})
    problems = summary_problems(summary)
    if problems:
        summary = corrupt_summary([f"W&B summary: {p}" for p in problems], choices)
    elif summary.get("status") not in FINISHED and choices:
        summary.setdefault("choices", choices)
    rows = None
    if history is not None:
        rows = [_visible(row) for row in history if isinstance(row, dict) and "epoch" in row]
    return RunRecord(summary=summary, config=nested, run_dir=run_dir, history=rows, ids=ids)


def _started(run: RunFile) -> str:
    match = _RUN_TIME.search(run.path.parent.name)
    return match.group(1) if match else ""


def offline_records(paths: Iterable[str | Path], group: str | None = None) -> list[RunRecord]:
    """Records of the W&B run files below ``paths`` (offline runs, or the local copy of online ones).

    Where one job directory holds several W&B runs (a job stopped and resumed),
    the last finished one counts, else the last one. Files with no run in them
    (an online start that failed before the job went offline) are skipped; a
    file that cannot be read makes a corrupt record for its job directory
    (when no other run file there reads, and no --group filter asks for a group
    the file cannot tell).
    """
    by_dir: dict[Path, RunFile] = {}
    damaged: dict[Path, str] = {}
    for root in paths:
        if not Path(root).is_dir():
            raise FileNotFoundError(f"no such directory: {printable(root)}")
        for path in run_files(root):
            try:
                run = read_run(path)
            except Exception as exc:  # a damaged file (framing, checksum, protobuf, JSON): listed, not fatal
                why = str(exc).removeprefix(f"{path}: ") or type(exc).__name__
                damaged[path.parent.parent.parent.resolve()] = f"{path.name}: {printable(why, 160)}"
                continue
            if not run.run_id or (group is not None and run.group != group):
                continue
            key = run.run_dir.resolve()
            rank = (run.summary.get("status") in FINISHED, _started(run))
            best = by_dir.get(key)
            if best is None or rank >= (best.summary.get("status") in FINISHED, _started(best)):
                by_dir[key] = run
    records = {key: wandb_record(run.summary, run.config, str(key), run.history,
                                 ids=(f"dir:{key}", f"wandb:{run.run_id}"))
               for key, run in by_dir.items()}
    for key, why in damaged.items():
        if key not in records and group is None:
            records[key] = RunRecord(corrupt_summary([why]), run_dir=str(key), ids=(f"dir:{key}",))
    return [records[key] for key in sorted(records, key=str)]


def online_records(project: str, group: str | None = None, history: bool = False,
                   api: Any = None) -> list[RunRecord]:
    """Records of the runs of a W&B project ``ENTITY/PROJECT`` (optionally one group), via wandb.Api().

    ``history=True`` also downloads every run's per-epoch rows (for learning
    curves); it costs one request per run. ``run_dir`` is the run's W&B path.
    """
    if api is None:
        import wandb

        api = wandb.Api()
    filters = {"group": group} if group else None
    records = []
    for run in api.runs(project, filters=filters):
        rows = list(run.scan_history()) if history else None
        records.append(wandb_record(dict(run.summary_metrics), dict(run.config), "/".join(run.path), rows,
                                    ids=(f"wandb:{run.path[-1]}",)))
    return records

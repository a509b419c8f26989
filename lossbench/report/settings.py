"""Which runs a cell may pool: the same experiment but for the seed.

A cell of a table averages runs over seeds. Runs that differ in any other setting
(dataset, model, epochs, optimizer, preset, an override) that is neither a row nor a
column would be averaged as if they were seeds of one experiment; instead the runs
are split, one table per setting (:func:`split_by_setting`), or the report refuses.
Settings are read from each run's recorded config (summary.json's ``config``, else
``.hydra/config.yaml``) and its Hydra choices; housekeeping that does not change a
result (lossbench.core.identity.NOT_EXPERIMENT: progress, threads, data_dir, ...) never
splits. A run recorded twice (the same experiment and seed in two folders, e.g. one
sweep under two launchers) counts once (:func:`drop_duplicates`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from lossbench.core.identity import experiment_key, is_housekeeping
from lossbench.report.collect import CHOICE_KEYS, RunRecord, _flatten
from lossbench.report.tables import MISSING, _label, _natural, _override_keys

# What differs between the runs one cell pools (their replicates: seeds, and a cross-validated set's folds).
REPLICATE_KEYS = ("seed", "noise_seed", "dataset.fold")
# Which of two records of one experiment is kept: the most finished.
_STATUS_RANK = {"completed": 0, "diverged": 1, "failed": 2, "unfinished": 3}


@dataclass(frozen=True)
class Setting:
    """The runs (``index``: rows of the report's frame) of one setting, and the keys that name it."""

    values: dict[str, str]
    index: pd.Index

    @property
    def name(self) -> str:
        """"dataset=mnist, trainer.epochs=2"; "" when the runs differ in nothing but the table's keys."""
        return ", ".join(f"{k}={v}" for k, v in self.values.items())


def _config(record: RunRecord) -> dict | None:
    config = record.config if isinstance(record.config, dict) else record.summary.get("config")
    return config if isinstance(config, dict) else None


def _choices(record: RunRecord) -> dict[str, str]:
    summary = record.summary
    found = summary.get("choices") if isinstance(summary.get("choices"), dict) else {}
    return {k: v for k in CHOICE_KEYS if isinstance(v := summary.get(k, found.get(k)), str)}


def setting_values(records: Sequence[RunRecord]) -> pd.DataFrame:
    """One row per record (index i is record i, as in runs_frame): its experiment's settings as labels,
    dotted config keys (``trainer.epochs``) and Hydra choices (``dataset``), less replicates and
    housekeeping. A key another run's config has and this run's lacks reads "?", as null does; a run
    without a recorded config has NaN throughout (it tells nothing, so it never makes a cell mixed)."""
    rows, known = [], []
    for record in records:
        config = _config(record)
        row = {k: v for k, v in _choices(record).items() if not is_housekeeping(k)}
        if config is not None:
            flat = _flatten(experiment_key(config))
            row.update({k: _label(v) for k, v in flat.items() if k not in REPLICATE_KEYS})
        rows.append(row)
        known.append(config is not None)
    settings = pd.DataFrame(rows, index=range(len(rows)), dtype=object)
    settings.loc[known] = settings.loc[known].fillna(MISSING)
    return settings


def _where(record: RunRecord) -> str:
    return record.run_dir or (record.ids[0] if record.ids else "a run without a folder")


def drop_duplicates(records: Iterable[RunRecord]) -> tuple[list[RunRecord], list[str]]:
    """(records, notes): of the records of one experiment and seed (the same config less housekeeping,
    the same choices), only the most finished is kept (completed, diverged, failed, unfinished; the
    first read among equals). Records without a config, and corrupt ones (their files damaged: they
    stay listed with why), are never taken for duplicates."""
    records = list(records)
    kept: dict[str, int] = {}  # experiment -> the record kept
    alone: list[int] = []
    dropped: list[tuple[int, int]] = []  # (a record left out, a record of the same experiment)
    for i, record in enumerate(records):
        config = _config(record)
        if config is None or record.summary.get("status") == "corrupt":
            alone.append(i)
            continue
        key = json.dumps([experiment_key(config), _choices(record)], sort_keys=True, default=str)
        j = kept.setdefault(key, i)
        if j == i:
            continue
        rank = _STATUS_RANK.get(str(record.summary.get("status")), len(_STATUS_RANK))
        if rank < _STATUS_RANK.get(str(records[j].summary.get("status")), len(_STATUS_RANK)):
            kept[key] = i
            dropped.append((j, i))
        else:
            dropped.append((i, j))
    order = sorted([*kept.values(), *alone])
    if not dropped:
        return [records[i] for i in order], []
    gone, twin = dropped[0]
    return [records[i] for i in order], [
        f"note: {len(dropped)} run(s) repeat the same experiment and seed as another run (e.g. "
        f"{_where(records[gone])} repeats {_where(records[twin])}); each counts once, the most finished "
        "record kept"]


def varying_keys(frame: pd.DataFrame, settings: pd.DataFrame, table_keys: Sequence[str]) -> list[str]:
    """Settings that take two values among the runs of one cell (the cell: ``table_keys``' labels)."""
    if frame.empty or settings.empty:
        return []
    cells = [frame[k].map(_label).rename(f"_cell{i}") for i, k in enumerate(table_keys)]
    counts = settings.loc[frame.index].groupby(cells, dropna=False).nunique(dropna=True)
    return [k for k in settings.columns if k not in table_keys and (counts[k] > 1).any()]


def _naming_keys(frame: pd.DataFrame, labels: pd.DataFrame) -> list[str]:
    """The few keys that name each setting: varying choices (``dataset``), then overridden keys outside
    a varying choice's group, then whatever else tells the settings apart (in that order)."""
    overridden: dict[str, None] = {}
    for text in frame.get("overrides", pd.Series(dtype=object)):
        overridden.update(dict.fromkeys(_override_keys(text)))
    choices = [k for k in labels if k in CHOICE_KEYS]
    explained = tuple(f"{k}." for k in choices)
    typed = [k for k in overridden if k in labels and k not in choices]
    chosen = choices + [k for k in typed if not k.startswith(explained)]
    rest = [k for k in typed if k not in chosen] + sorted(set(labels) - set(typed) - set(choices))
    groups = len(labels.drop_duplicates())
    for key in rest:
        if len(labels[chosen].drop_duplicates()) >= groups:
            break
        if len(labels[[*chosen, key]].drop_duplicates()) > len(labels[chosen].drop_duplicates()):
            chosen.append(key)
    return [k for k in labels if k in chosen]  # in the order the runs record them


def split_by_setting(frame: pd.DataFrame, settings: pd.DataFrame, table_keys: Sequence[str]) -> list[Setting]:
    """The runs of ``frame`` grouped by the settings that vary inside a cell of ``table_keys``; one
    group (named "") when none does. ``settings`` is :func:`setting_values` of the frame's records."""
    varying = varying_keys(frame, settings, table_keys)
    if not varying:
        return [Setting({}, frame.index)]
    labels = settings.loc[frame.index, varying].fillna("?")
    naming = _naming_keys(frame, labels)
    parts = []
    by = varying if len(varying) > 1 else varying[0]
    for values, index in labels.groupby(by, sort=False).groups.items():
        named = dict(zip(varying, values if len(varying) > 1 else (values,), strict=True))
        parts.append(Setting({k: named[k] for k in naming}, pd.Index(index)))
    return sorted(parts, key=lambda p: tuple(_natural(v) for v in p.values.values()))


def refusal(parts: Sequence[Setting], cols: Sequence[str]) -> str:
    """The one line that refuses to pool the runs of several settings, and how to choose."""
    keys = list(parts[0].values)
    first = parts[0].values[keys[0]]
    shown = "; ".join(p.name for p in parts[:3]) + ("; ..." if len(parts) > 3 else "")
    return (f"the runs differ in {', '.join(keys)}, neither a row nor a column "
            f"({len(parts)} settings: {shown}); "
            f"make it a column (--cols {keys[0]},{','.join(cols)}), keep one value "
            f"(--where {keys[0]}={first}), or leave out --mixed refuse for one table per setting")

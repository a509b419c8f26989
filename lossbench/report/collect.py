"""Runs as data: find run directories, read what each left behind (safely), one DataFrame row per run."""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lossbench.report.escape import printable

STATUSES = ("completed", "diverged", "failed", "unfinished", "corrupt")
FINISHED = ("completed", "diverged")
# Hydra choices a run records (summary.json and failure.json keep them at top level).
CHOICE_KEYS = ("dataset", "model", "loss", "noise", "reweight", "detect", "adversarial", "attack", "optim",
               "scheduler", "trainer", "logger")
# Summary entries that are not table material: long text, or nested data read from the record itself.
_SKIPPED = {"traceback", "config", "choices"}
_NESTED_PREFIXES = ("test_reliability",)  # reliability bins, any view
# What the summary schema expects (see summary_problems).
_NAME_KEYS = (*CHOICE_KEYS, "loss_family", "noise_kind")
_TEXT_KEYS = ("error", "phase", "checkpoint_error")
_INTEGER_KEYS = ("seed", "noise_seed")
_NUMBER_KEYS = ("noise_rate", "expected_noise_rate", "realized_noise_rate", "epochs", "diverged_epoch",
                "throughput", "wall_time_s", "epochs_logged")
_NUMBER_PREFIXES = ("test_", "val_", "best_", "final_", "train_", "num_", "temperature")
_INFINITIES = {"inf": math.inf, "-inf": -math.inf}  # as lossbench.core.io.jsonable writes them
# Files the report reads are small; anything bigger (or not a regular file: a FIFO, /dev/zero) is refused.
MAX_FILE_BYTES = 256 * 2**20
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][\w.]*)\}")


@dataclass
class RunRecord:
    """What one run left behind, from any source (a local directory, a W&B run).

    ``summary``: summary.json, or failure.json, or ``{"status": "unfinished", ...}``,
    or ``{"status": "corrupt", "error": why, ...}`` (see :func:`read_run`).
    ``config``: the run's config as a nested dict. ``run_dir``: where the run
    lives, if anywhere. ``history``: per-epoch records when the source holds
    them; None means "read run_dir/metrics.jsonl". ``ids``: names under which
    the same run may be read again from another source (``dir:<absolute run
    directory>``, ``wandb:<W&B run id>``); see :func:`deduplicate`.
    """

    summary: dict
    config: dict | None = None
    run_dir: str | None = None
    history: list[dict] | None = None
    ids: tuple[str, ...] = ()


# -- reading files that may hold anything ---------------------------------------------------------


def _read_text(path: Path) -> tuple[str | None, str | None]:
    """(text, None), or (None, why it cannot be read); (None, None) when the file does not exist."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None, ("a link to nothing" if os.path.lexists(path) else None)
    except OSError as exc:
        return None, f"cannot read ({exc.strerror or exc})"
    if not stat.S_ISREG(info.st_mode):
        return None, "not a regular file"
    if info.st_size > MAX_FILE_BYTES:
        return None, f"larger than {MAX_FILE_BYTES:,} bytes"
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return None, f"cannot read ({exc.strerror or exc})"
    if len(data) > MAX_FILE_BYTES:  # grew while being read
        return None, f"larger than {MAX_FILE_BYTES:,} bytes"
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (byte {exc.start})"


def _kind(value: Any) -> str:
    """How a value is described in a problem: its text (short), or its JSON type."""
    if isinstance(value, str):
        return repr(printable(value, 40))
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    return {dict: "an object", list: "a list"}.get(type(value), f"a {type(value).__name__}")


def _parse_json(text: str) -> tuple[Any, str | None]:
    if not text.strip():
        return None, "empty file"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    except (ValueError, RecursionError) as exc:
        return None, f"not valid JSON ({type(exc).__name__})"


def read_json_object(path: Path) -> tuple[dict | None, str | None]:
    """(the JSON object in ``path``, None), or (None, why not); (None, None) when there is no file."""
    text, problem = _read_text(path)
    if text is None:
        return None, problem
    data, problem = _parse_json(text)
    if problem is None and not isinstance(data, dict):
        return None, f"holds {_kind(data)}, not an object"
    return data, problem


def _yaml_loader():
    import yaml
    from omegaconf._utils import get_yaml_loader

    class Loader(get_yaml_loader()):
        """OmegaConf's YAML reading (its float rules), without aliases: Hydra never writes them, and
        nested aliases can blow up (a "billion laughs" file)."""

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise yaml.YAMLError("YAML aliases (*name) are not accepted")
            return super().compose_node(parent, index)

    return Loader


def read_yaml(path: Path) -> tuple[Any, str | None]:
    """(the YAML document in ``path``, None), or (None, why not); (None, None) when there is no file."""
    import yaml

    text, problem = _read_text(path)
    if text is None:
        return None, problem
    try:
        return yaml.load(text, Loader=_yaml_loader()), None  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        return None, f"not valid YAML ({printable(exc.problem or exc.context, 80)}{where})"
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        return None, f"not valid YAML ({printable(exc, 80)})"


def _resolve(tree: Any) -> Any:
    """Plain ``${a.b}`` interpolations replaced by the values they point at (as Hydra composed them).

    Resolver calls (``${oc.env:X}``, ``${now:...}``) stay as written: they would
    give what the reader's machine says today, not what the run saw.
    """

    def lookup(path: str) -> Any:
        node = tree
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(path)
            node = node[part]
        return node

    def value(v: Any, depth: int = 0) -> Any:
        if isinstance(v, dict):
            return {k: value(x, depth) for k, x in v.items()}
        if isinstance(v, list):
            return [value(x, depth) for x in v]
        if not isinstance(v, str) or "${" not in v or depth > 8:
            return v
        whole = _INTERPOLATION.fullmatch(v)
        try:
            if whole:
                target = lookup(whole.group(1))
                return v if isinstance(target, (dict, list)) else value(target, depth + 1)
            return _INTERPOLATION.sub(lambda m: str(value(lookup(m.group(1)), depth + 1)), v)
        except KeyError:
            return v

    return value(tree)


def read_jsonl_rows(path: Path) -> tuple[list[dict], str | None]:
    """(every complete JSON-object line of ``path``, None), or ([], why not). A torn line is skipped."""
    text, problem = _read_text(path)
    rows: list[dict] = []
    for line in (text or "").splitlines():
        data, bad = _parse_json(line)
        if bad is None and isinstance(data, dict):
            rows.append(data)
    return rows, problem


# -- what a summary must look like ------------------------------------------------------------------


def is_figure_key(key: str) -> bool:
    """Summary keys that hold numbers: test_*, val_*, best_*, final_*, train_*, num_*, temperature*,
    the noise rates, epochs, times. Text belongs under other names."""
    return key in _INTEGER_KEYS or key in _NUMBER_KEYS or key.startswith(_NUMBER_PREFIXES)


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)) \
        or (isinstance(value, str) and value in _INFINITIES)


def summary_problems(summary: Mapping, statuses: Iterable[str] | None = None) -> list[str]:
    """What is wrong with a summary (summary.json, failure.json, a W&B summary); [] when nothing.

    The schema: ``status`` one of ``statuses`` (default: any of STATUSES, or
    none); choices, ``loss_family`` and ``noise_kind`` names (text or null);
    ``seed``, ``noise_seed`` integers; every figure key (:func:`is_figure_key`)
    a number, null or "inf"/"-inf" unless it holds nested data (a list or an
    object: per-class accuracies, reliability bins); ``overrides`` a list of
    text; ``error``, ``phase``, ``checkpoint_error`` text; ``choices``,
    ``provenance``, ``config`` objects.
    """
    problems = []
    status = summary.get("status")
    allowed = tuple(statuses) if statuses is not None else STATUSES
    if statuses is not None and "status" not in summary:
        problems.append("no status")
    elif (statuses is not None or status is not None) and not (isinstance(status, str) and status in allowed):
        shown = _kind(status) if isinstance(status, str) else f"is {_kind(status)}"
        problems.append(f"status {shown}; expected {' or '.join(repr(s) for s in allowed)}")
    for key, value in summary.items():
        if key == "status":
            continue
        if key in _NAME_KEYS or key in _TEXT_KEYS:
            if value is not None and not isinstance(value, str):
                problems.append(f"{key} is {_kind(value)}, not text")
        elif key in _INTEGER_KEYS:
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                problems.append(f"{key} is {_kind(value)}, not an integer")
        elif is_figure_key(key):
            if not isinstance(value, (list, dict)) and not _is_number(value):
                problems.append(f"{key} is {_kind(value)}, not a number")
        elif key == "overrides":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append(f"overrides is {_kind(value)}, not a list of text")
        elif key in ("choices", "provenance", "config"):
            if not isinstance(value, dict):
                problems.append(f"{key} is {_kind(value)}, not an object")
    choices = summary.get("choices")
    if isinstance(choices, dict):
        problems += [f"choices.{k} is {_kind(v)}, not text" for k, v in choices.items()
                     if k in CHOICE_KEYS and v is not None and not isinstance(v, str)]
    return problems


def corrupt_summary(problems: list[str], choices: Mapping | None = None,
                    overrides: list | None = None) -> dict:
    """The summary a damaged run is reported with: why, and where it belongs when that is known."""
    summary: dict = {"status": "corrupt", "error": "; ".join(problems)}
    if choices:
        summary["choices"] = dict(choices)
    if overrides is not None:
        summary["overrides"] = list(overrides)
    return summary


# -- local run directories ----------------------------------------------------------------------------


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Every directory at or below ``paths`` that holds ``.hydra/config.yaml``, in natural order."""
    found: dict[Path, None] = {}
    for root in paths:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"no such directory: {printable(root)}")
        # os.walk, not rglob: a folder removed while it is walked (a sweep's ledger as the sweep ends,
        # under a report of a running sweep) is skipped instead of ending the report
        for folder, dirs, files in os.walk(root):
            if os.path.basename(folder) == ".hydra" and "config.yaml" in (*files, *dirs):
                found[Path(folder).parent.resolve()] = None
    return sorted(found, key=_natural_key)


def _hydra_files(run_dir: Path) -> tuple[dict, list | None, dict | None, list[str]]:
    """(choices, overrides, config, problems) from a run's ``.hydra/`` files."""
    hydra_dir = run_dir / ".hydra"
    problems: list[str] = []
    choices: dict = {}
    data, problem = read_yaml(hydra_dir / "hydra.yaml")
    if problem:
        problems.append(f".hydra/hydra.yaml: {problem}")
    elif data is not None:
        found = data
        for key in ("hydra", "runtime", "choices"):
            found = found.get(key) if isinstance(found, dict) else None
        found = found if isinstance(found, dict) else None
        if found is None:
            problems.append(".hydra/hydra.yaml: no hydra.runtime.choices")
        else:
            for key in CHOICE_KEYS:
                value = found.get(key)
                if isinstance(value, str):
                    choices[key] = value
                elif value is not None:
                    problems.append(f".hydra/hydra.yaml: choice {key} is {_kind(value)}, not text")
    overrides, problem = read_yaml(hydra_dir / "overrides.yaml")
    if problem:
        problems.append(f".hydra/overrides.yaml: {problem}")
        overrides = None
    elif overrides is not None and (not isinstance(overrides, list)
                                    or not all(isinstance(v, str) for v in overrides)):
        problems.append(f".hydra/overrides.yaml: holds {_kind(overrides)}, not a list of text")
        overrides = None
    config, problem = read_yaml(hydra_dir / "config.yaml")
    if problem:
        problems.append(f".hydra/config.yaml: {problem}")
        config = None
    elif config is not None and not isinstance(config, dict):
        problems.append(f".hydra/config.yaml: holds {_kind(config)}, not a mapping")
        config = None
    try:
        config = _resolve(config) if config is not None else None
    except RecursionError:
        problems.append(".hydra/config.yaml: nested too deeply")
        config = None
    return choices, overrides, config, problems


def _wandb_ids(run_dir: Path) -> tuple[str, ...]:
    """The ids of the W&B runs logged beside a run (``wandb/<offline-|>run-<time>-<id>/run-<id>.wandb``)."""
    ids = []
    for path in sorted((run_dir / "wandb").glob("*run-*/run-*.wandb")):
        if path.parent.name != "latest-run" and path.stem.startswith("run-"):
            ids.append(f"wandb:{path.stem[4:]}")
    return tuple(ids)


def read_run(run_dir: str | Path) -> RunRecord:
    """The record of one local run directory, whatever its files hold.

    A valid summary.json means finished (completed or diverged); else a valid
    failure.json means failed; a directory with neither is unfinished (or still
    running), and its choices, overrides and config come from ``.hydra/``. A
    run whose deciding files cannot be read or break the summary schema
    (:func:`summary_problems`): a truncated or hand-edited summary.json,
    failure.json, or (for an unfinished run) ``.hydra/`` files, is "corrupt",
    with ``error`` saying why, placed by whatever ``.hydra/`` still tells.
    """
    run_dir = Path(run_dir)
    ids = (f"dir:{run_dir.resolve()}", *_wandb_ids(run_dir))
    summary, problem = read_json_object(run_dir / "summary.json")
    name, statuses = "summary.json", FINISHED
    if summary is None and problem is None:
        summary, problem = read_json_object(run_dir / "failure.json")
        name, statuses = "failure.json", ("failed",)
    problems = [f"{name}: {problem}"] if problem else []
    if summary is not None:
        problems += [f"{name}: {p}" for p in summary_problems(summary, statuses)]
    if summary is not None and not problems:
        config = summary.get("config")
        if not isinstance(config, dict):
            config = _hydra_files(run_dir)[2]
        return RunRecord(summary=summary, config=config, run_dir=str(run_dir), ids=ids)
    choices, overrides, config, hydra_problems = _hydra_files(run_dir)
    if problems:  # a finished or failed run whose record is damaged
        return RunRecord(corrupt_summary(problems, choices, overrides), config, str(run_dir), ids=ids)
    history, history_problem = read_jsonl_rows(run_dir / "metrics.jsonl")
    if history_problem:
        hydra_problems.append(f"metrics.jsonl: {history_problem}")
    if hydra_problems:
        return RunRecord(corrupt_summary(hydra_problems, choices, overrides), config, str(run_dir), ids=ids)
    summary = {"status": "unfinished", "choices": choices, "epochs_logged": len(history)}
    if overrides is not None:
        summary["overrides"] = overrides
    return RunRecord(summary=summary, config=config, run_dir=str(run_dir), ids=ids)


def local_records(paths: Iterable[str | Path]) -> list[RunRecord]:
    """The records of every run directory below ``paths``."""
    return [read_run(d) for d in find_run_dirs(paths)]


def deduplicate(records: Iterable[RunRecord]) -> tuple[list[RunRecord], int]:
    """(records, how many were dropped): a run read twice (its folder and its W&B run) counts once.

    Two records are the same run when they share an id (the run directory, a
    W&B run id); the first one read wins (local directories are read first:
    their summary.json is the run's own record).
    """
    seen: set[str] = set()
    kept, dropped = [], 0
    for record in records:
        if seen.intersection(record.ids):
            dropped += 1
        else:
            kept.append(record)
        seen.update(record.ids)
    return kept, dropped


# -- records to rows --------------------------------------------------------------------------------


def _flatten(data: Mapping, prefix: str = "") -> dict[str, Any]:
    """{"loss": {"gamma": 3}} -> {"loss.gamma": 3}; lists become their JSON text."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(list(value), default=str)
        else:
            flat[name] = value
    return flat


def _family(loss: Any) -> str | None:
    from lossbench.losses import LOSSES

    return LOSSES.get(loss).family if isinstance(loss, str) and loss in LOSSES else None


def _number(value: Any) -> Any:
    """A figure as a float-able value: "inf"/"-inf" as infinities, anything not a number as None."""
    if isinstance(value, str):
        return _INFINITIES.get(value)
    return value if _is_number(value) else None


def _row(summary: dict, config: dict | None, run_dir: str | None) -> dict:
    status = summary.get("status") or "unfinished"
    row: dict[str, Any] = {"run_dir": run_dir, "status": status}
    choices = summary.get("choices")
    if isinstance(choices, Mapping):
        row.update({k: v for k, v in choices.items() if k in CHOICE_KEYS and isinstance(v, str)})
    for key, value in summary.items():
        if key in _SKIPPED or key in ("status", "run_dir") or key.startswith(_NESTED_PREFIXES):
            continue
        if key == "overrides" and isinstance(value, list):
            row[key] = " ".join(str(v) for v in value)
        elif isinstance(value, Mapping):
            row.update(_flatten(value, f"{key}."))
        elif isinstance(value, (list, tuple)):
            continue
        elif is_figure_key(key):
            row[key] = _number(value)
        else:
            row[key] = value
    if config is None and isinstance(summary.get("config"), Mapping):
        config = summary["config"]
    for key, value in _flatten(config if isinstance(config, Mapping) else {}).items():
        row.setdefault(key, value)
    if row.get("loss_family") is None:
        row["loss_family"] = _family(row.get("loss"))
    if row.get("noise_rate") is None:
        row["noise_rate"] = _number(row.get("noise.rate"))
    return row


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
      * for a damaged run: ``{"status": "corrupt", "error": why}``, optionally
        with ``choices`` and ``overrides``;
      None or a dict without ``status`` counts as unfinished. A summary that
      breaks the schema (:func:`summary_problems`) gives a corrupt row that
      says why, as does anything that cannot be turned into a row.
    - ``config``: the run's composed config as a nested dict, resolved where
      possible; None falls back to ``summary["config"]``.
    - ``run_dir``: the run's local directory, or None (or an id) for a run that
      has none.

    The row holds ``run_dir``, ``status``, the choices, every scalar of the
    summary (a summary value wins over a config value of the same name; figures
    as numbers, "inf" as infinity), ``provenance.*``, ``overrides`` as one
    space-separated string, and the config flattened to dotted keys
    (``loss.gamma``, ``trainer.epochs``; lists as JSON text). Nested data
    (reliability bins, traceback) stays in the record. ``loss_family`` is filled
    from the loss registry when the summary lacks it.
    """
    summary = dict(summary or {})
    problems = summary_problems(summary)
    if problems:
        summary = corrupt_summary(problems)
    try:
        return _row(summary, config, run_dir)
    except (RecursionError, TypeError, ValueError) as exc:
        return _row(corrupt_summary([f"cannot be read as a row ({type(exc).__name__})"]), None, run_dir)


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
    """Per-epoch records of a run (JSON objects only): the record's own, else run_dir/metrics.jsonl."""
    if record.history is not None:
        return [row for row in record.history if isinstance(row, dict)]
    if record.run_dir is None:
        return []
    return read_jsonl_rows(Path(record.run_dir) / "metrics.jsonl")[0]

"""Read the run file wandb writes beside a run (``wandb/*run-*/run-<id>.wandb``).

wandb 0.31 ships no Python reader for it (the ``DataStore`` of older releases is
gone, and ``wandb sync`` reads it inside the Go core), so this module reads the
format directly. The file is a LevelDB-style log: a 7-byte header (``:W&B``,
magic 0xBEE1, version 0), then 32 KiB blocks of chunks, each framed by a CRC-32
(zlib's, seeded with the CRC of the chunk's type byte), a 2-byte length and a
1-byte type (full, first, middle, last); a block tail shorter than a frame is
zero padding. Each reassembled payload is one ``wandb_internal_pb2.Record``.
The records used here: ``run`` (config, group, tags, ...), ``config`` (later
config updates), ``history`` (one logged step), ``summary`` (updates and
removals), ``exit`` (the exit code). Every value travels as JSON.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILE_HEADER = struct.Struct("<4sHB")
IDENT, MAGIC, VERSION = b":W&B", 0xBEE1, 0
BLOCK_SIZE = 32 * 1024
CHUNK_HEADER = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_TYPE_CRC = {kind: zlib.crc32(bytes([kind])) for kind in (FULL, FIRST, MIDDLE, LAST)}


class CorruptRunFile(ValueError):
    """A ``.wandb`` file whose header, framing or checksums are wrong."""


def read_payloads(path: Path) -> Iterator[bytes]:
    """Every complete record payload of a ``.wandb`` file, in order.

    A torn last chunk (a run still writing, or killed mid-write) ends the scan
    quietly; a checksum or framing error inside the file raises CorruptRunFile.
    """
    data = Path(path).read_bytes()
    if len(data) < FILE_HEADER.size:
        return
    ident, magic, version = FILE_HEADER.unpack_from(data)
    if ident != IDENT or magic != MAGIC or version != VERSION:
        raise CorruptRunFile(f"{path}: not a wandb run file (header {data[:FILE_HEADER.size]!r})")
    pos = FILE_HEADER.size
    pending: bytearray | None = None
    while True:
        left_in_block = BLOCK_SIZE - pos % BLOCK_SIZE
        if left_in_block < CHUNK_HEADER.size:
            pos += left_in_block
            continue
        if pos + CHUNK_HEADER.size > len(data):
            return
        crc, length, kind = CHUNK_HEADER.unpack_from(data, pos)
        start = pos + CHUNK_HEADER.size
        if kind == 0 and length == 0 and crc == 0:
            return  # zero-filled space after the last record
        if start + length > len(data):
            return
        payload = data[start : start + length]
        if kind not in _TYPE_CRC:
            raise CorruptRunFile(f"{path}: unknown chunk type {kind} at byte {pos}")
        if zlib.crc32(payload, _TYPE_CRC[kind]) != crc:
            raise CorruptRunFile(f"{path}: checksum mismatch in the chunk at byte {pos}")
        if kind in (MIDDLE, LAST) and pending is None:
            raise CorruptRunFile(f"{path}: chunk of type {kind} at byte {pos} continues nothing")
        pos = start + length
        if kind == FULL:
            yield payload
        elif kind == FIRST:
            pending = bytearray(payload)
        elif kind == MIDDLE:
            pending += payload
        else:
            yield bytes(pending + payload)
            pending = None


def read_records(path: Path) -> Iterator[Any]:
    """Every ``wandb_internal_pb2.Record`` of a ``.wandb`` file."""
    from wandb.proto import wandb_internal_pb2

    for payload in read_payloads(path):
        yield wandb_internal_pb2.Record.FromString(payload)


def _decode(value_json: str) -> Any:
    return json.loads(value_json) if value_json else None


def _item_path(item: Any) -> list[str]:
    return [item.key] if item.key else list(item.nested_key)


def _assign(target: dict, keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        child = target.get(key)
        if not isinstance(child, dict):
            child = target[key] = {}
        target = child
    target[keys[-1]] = value


def _remove(target: dict, keys: list[str]) -> None:
    for key in keys[:-1]:
        target = target.get(key)
        if not isinstance(target, dict):
            return
    target.pop(keys[-1], None)


@dataclass
class RunFile:
    """What one W&B run recorded: its identity, config, history rows, summary and exit code.

    ``config`` is flat as it was logged (keys like ``loss.gamma``), without
    wandb's own ``_wandb`` entry. ``history`` holds one dict per logged step in
    order, with wandb's ``_step``, ``_runtime`` and ``_timestamp``. ``exit_code``
    is None when the run never finished (still running, or killed).
    """

    path: Path
    run_id: str = ""
    entity: str = ""
    project: str = ""
    group: str = ""
    job_type: str = ""
    name: str = ""
    notes: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    exit_code: int | None = None

    @property
    def run_dir(self) -> Path:
        """The directory that holds ``wandb/`` (for lossbench, the job's output directory)."""
        return self.path.parent.parent.parent


def read_run(path: Path) -> RunFile:
    """Replay a ``.wandb`` file into a RunFile (later updates win, removals apply)."""
    run = RunFile(path=Path(path))
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.entity, run.project = r.run_id, r.entity, r.project
            run.group, run.job_type, run.name, run.notes = r.run_group, r.job_type, r.display_name, r.notes
            run.tags = list(r.tags)
            for item in r.config.update:
                _assign(run.config, _item_path(item), _decode(item.value_json))
        elif kind == "config":
            for item in record.config.update:
                _assign(run.config, _item_path(item), _decode(item.value_json))
            for item in record.config.remove:
                _remove(run.config, _item_path(item))
        elif kind == "history":
            row: dict = {}
            for item in record.history.item:
                _assign(row, _item_path(item), _decode(item.value_json))
            run.history.append(row)
        elif kind == "summary":
            for item in record.summary.update:
                _assign(run.summary, _item_path(item), _decode(item.value_json))
            for item in record.summary.remove:
                _remove(run.summary, _item_path(item))
        elif kind == "exit":
            run.exit_code = int(record.exit.exit_code)
    run.config.pop("_wandb", None)
    return run


def run_files(root: Path) -> list[Path]:
    """The ``.wandb`` files of every run below ``root`` (offline and online runs alike).

    wandb's ``latest-run`` link is skipped, so each run is listed once.
    """
    found = []
    for path in sorted(Path(root).rglob("run-*.wandb")):
        run_dir = path.parent
        if run_dir.parent.name == "wandb" and run_dir.name != "latest-run" and not run_dir.is_symlink():
            found.append(path)
    return found


def is_media(value: Any) -> bool:
    """True for the reference wandb stores in place of a logged Image, Table, plot, ..."""
    return isinstance(value, dict) and "_type" in value


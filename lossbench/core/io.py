"""Files lossbench writes and reads back: atomic files with the user's umask, JSON lines, bounded reads.

A run or sweep folder is untrusted input (it may have been received, or live in a shared folder):
every file lossbench writes there is opened without following links (``open_nofollow``), folders
it writes into are checked not to be links (``ensure_folder``), a folder whose own entries are
links is refused before anything is written (``lossbench.lifecycle.run_folder``), and what is read back from
it is bounded in size, nesting and YAML alias expansion (``read_recorded``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from lossbench.core.startup import writing_begins

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs on one directory are not serialised there
    fcntl = None  # type: ignore[assignment]

HYDRA_DIR = ".hydra"
# What is read back from a run folder is small: a recorded config or summary beyond these is refused.
MAX_RECORD_BYTES = 64 * 2**20
MAX_YAML_NODES = 200_000  # YAML nodes once aliases are expanded (a "billion laughs" file has 10**9)


class LinkRefused(OSError):
    """A file or folder lossbench would write through is a symbolic link (or not what it should be)."""

    def __init__(self, path: Path | str, what: str = "is a symbolic link") -> None:
        super().__init__(errno.ELOOP, f"{what}; lossbench writes no file through a link", str(path))

    def __str__(self) -> str:
        return f"{self.filename} {self.strerror}"


def open_nofollow(path: Path | str, flags: int, mode: int = 0o666) -> int:
    """``os.open`` that refuses a link as the last component of ``path`` (``O_NOFOLLOW``)."""
    if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
        writing_begins()
    try:
        return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.EMLINK and os.path.islink(path)):
            raise LinkRefused(path) from None
        raise


def make_folders(path: Path | str) -> Path:
    """Create folder ``path`` and its parents where missing (``mkdir -p``; a link to a folder is
    followed, as the user's output folder may be one)."""
    path = Path(path)
    writing_begins()
    path.mkdir(parents=True, exist_ok=True)
    return path


def ensure_folder(path: Path | str) -> Path:
    """Create folder ``path`` if needed; refuse it if it is a link or not a folder."""
    path = Path(path)
    writing_begins()
    with contextlib.suppress(FileExistsError):
        os.mkdir(path)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise LinkRefused(path)
    if not stat.S_ISDIR(info.st_mode):
        raise LinkRefused(path, "is not a folder")
    return path


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):
        if test(mode):
            return name
    return "a file"


class NoFollowFileHandler(logging.FileHandler):
    """``logging.FileHandler`` (a run's ``run.log``) that opens its file without following a link;
    a log that cannot be opened is said once, in one line, and its records dropped."""

    def _open(self):  # noqa: ANN202 -- logging's signature
        fd = open_nofollow(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream is None:
            if getattr(self, "_failed", False):
                return
            try:
                self.stream = self._open()
            except OSError as exc:
                import sys

                self._failed = True
                why = exc.strerror or exc
                print(f"lossbench: warning: cannot write the log {self.baseFilename} ({why}); "
                      "its lines are not kept", file=sys.stderr, flush=True)
                return
        logging.StreamHandler.emit(self, record)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types; NaN becomes null and infinities strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return jsonable(value.item())
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    return value


def current_umask() -> int:
    """The process's umask, read without changing it where the platform allows (Linux >= 4.7)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "w", sync: bool = True) -> Iterator[IO]:
    """Write ``path`` all at once or not at all.

    The content goes to a uniquely named temporary file beside ``path`` (so
    concurrent writers never share one), is flushed and (``sync``) fsynced, gets the mode
    an ordinary ``open`` would give (0666 less the umask; mkstemp alone gives
    0600), and is renamed over ``path``. On any error the temporary file is
    removed and ``path`` is left as it was. Without ``sync`` the write survives the
    process (a kill, a crash) but not the machine's (a power cut may leave it empty).
    """
    path = Path(path)
    if os.path.islink(path):  # the rename would replace the link; refused as every other write is
        raise LinkRefused(path)
    writing_begins()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            if sync:
                os.fsync(f.fileno())
        if os.path.islink(path):
            raise LinkRefused(path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON to a temporary file in the same folder, fsync, then rename."""
    with atomic_file(path) as f:
        json.dump(jsonable(data), f, indent=2, sort_keys=False)
        f.write("\n")


def write_text_atomic(path: Path, text: str, sync: bool = True) -> None:
    with atomic_file(path, sync=sync) as f:
        f.write(text)


def write_jsonl_atomic(path: Path, records: list[dict], sync: bool = True) -> None:
    """Replace ``path`` by exactly these records, one JSON object per line, atomically."""
    with atomic_file(path, sync=sync) as f:
        for record in records:
            f.write(json.dumps(jsonable(record)) + "\n")


def write_with_atomic(path: Path, write: Callable[[IO], None], sync: bool = True) -> None:
    """Let ``write(binary_file)`` fill ``path`` atomically (e.g. ``np.savez_compressed``)."""
    with atomic_file(path, "wb", sync=sync) as f:
        write(f)


def append_jsonl(path: Path, record: dict) -> None:
    fd = open_nofollow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    with os.fdopen(fd, "a") as f:
        f.write(json.dumps(jsonable(record)) + "\n")
        f.flush()


class RecordError(ValueError):
    """A file of a run folder that is not read: too large, not a regular file, too deeply nested,
    a YAML alias bomb, not UTF-8, or not valid JSON/YAML. ``str()`` is one line."""


def read_bounded(path: Path | str, limit: int = MAX_RECORD_BYTES) -> str:
    """The text of regular file ``path`` (not through a link), refused beyond ``limit`` bytes.

    Raises FileNotFoundError when there is no such file, RecordError otherwise.
    """
    try:
        fd = open_nofollow(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO does not block the open
    except FileNotFoundError:
        raise
    except LinkRefused:
        raise RecordError(f"{path} is a symbolic link; a run folder's records are read only as files") \
            from None
    except OSError as exc:
        raise RecordError(f"{path} cannot be read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise RecordError(f"{path} is {_kind(info.st_mode)}, not a file")
        if info.st_size > limit:
            raise RecordError(f"{path} is larger than {limit:,} bytes ({info.st_size:,}); not read")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise RecordError(f"{path} is larger than {limit:,} bytes; not read")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RecordError(f"{path} is not UTF-8 text (byte {exc.start})") from None


def _yaml_size(node, limit: int) -> int:
    """Nodes of a composed YAML document with its aliases expanded (shared nodes counted each time)."""
    import yaml

    sizes: dict[int, int] = {}
    busy: set[int] = set()
    stack = [(node, False)]
    while stack:
        current, done = stack.pop()
        key = id(current)
        if done:
            busy.discard(key)
            children = current.value if isinstance(current, yaml.SequenceNode) else (
                [n for pair in current.value for n in pair] if isinstance(current, yaml.MappingNode) else [])
            sizes[key] = min(limit + 1, 1 + sum(sizes[id(c)] for c in children))
            continue
        if key in sizes:
            continue
        if key in busy:
            raise RecordError("holds a recursive YAML alias")
        busy.add(key)
        stack.append((current, True))
        if isinstance(current, yaml.SequenceNode):
            stack += [(c, False) for c in current.value if id(c) not in sizes]
        elif isinstance(current, yaml.MappingNode):
            stack += [(c, False) for pair in current.value for c in pair if id(c) not in sizes]
    return sizes[id(node)]


def read_recorded(path: Path | str, limit: int = MAX_RECORD_BYTES, max_nodes: int = MAX_YAML_NODES):
    """The YAML (``.yaml``) or JSON (anything else) document of a run folder's file, read safely.

    Bounded in bytes (``limit``), in nodes once YAML aliases are expanded (``max_nodes``: a
    "billion laughs" file is refused, not expanded) and in nesting (Python's recursion limit).
    YAML is read with OmegaConf's loader (its float rules), constructing plain data only.
    Raises FileNotFoundError when there is no file, RecordError (one line) for anything else.
    """
    text = read_bounded(path, limit)
    try:
        if str(path).endswith((".yaml", ".yml")):
            from omegaconf._utils import get_yaml_loader

            loader = get_yaml_loader()(text)
            try:
                node = loader.get_single_node()
                if node is None:
                    return None
                size = _yaml_size(node, max_nodes)
                if size > max_nodes:
                    raise RecordError(f"expands to more than {max_nodes:,} YAML nodes (nested aliases)")
                return loader.construct_document(node)
            finally:
                loader.dispose()
        return json.loads(text)
    except RecordError as exc:
        raise RecordError(f"{path} {exc}; not read") from None
    except RecursionError:
        raise RecordError(f"{path} is nested too deeply; not read") from None
    except Exception as exc:  # noqa: BLE001 -- yaml's and json's errors, whatever their type
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        first = (getattr(exc, "problem", None) or str(exc)).strip().splitlines()
        raise RecordError(f"{path} is not valid {'YAML' if str(path).endswith(('.yaml', '.yml')) else 'JSON'}"
                          f" ({first[0] if first else type(exc).__name__}{where})") from None


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None if it is missing, not valid JSON, or refused by
    ``read_recorded``'s bounds (a FIFO, a huge or deeply nested file)."""
    try:
        data = read_recorded(path)
    except (OSError, RecordError):
        return None
    return data if isinstance(data, dict) else None


def read_jsonl(path: Path) -> list[dict]:
    """Every complete JSON line of ``path`` (a torn last line is skipped)."""
    rows = []
    try:
        lines = read_bounded(path).splitlines()
    except (OSError, RecordError):
        return rows
    for line in lines:
        try:
            rows.append(json.loads(line))
        except (ValueError, RecursionError):
            continue
    return rows

"""Files a run writes: atomic files with the user's umask, JSON lines, the run-directory lock, provenance.

A run or sweep folder is untrusted input (it may have been received, or live in a shared folder):
every file lossbench writes there is opened without following links (``open_nofollow``), folders
it writes into are checked not to be links (``ensure_folder``), a folder whose own entries are
links is refused before anything is written (``run_folder_problem``), and what is read back from
it is bounded in size, nesting and YAML alias expansion (``read_recorded``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import platform
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs on one directory are not serialised there
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lossbench.lock"
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
    try:
        return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.EMLINK and os.path.islink(path)):
            raise LinkRefused(path) from None
        raise


def ensure_folder(path: Path | str) -> Path:
    """Create folder ``path`` if needed; refuse it if it is a link or not a folder."""
    path = Path(path)
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


def run_folder_problem(folder: Path | str, files: tuple[str, ...] = ()) -> str | None:
    """None if lossbench may write in run (or sweep) folder ``folder``, else why not (one line).

    A link among the folder's own entries or inside its ``.hydra`` folder would make lossbench write
    (or read) elsewhere; ``.hydra`` must be a folder; the lock, the log files and ``files`` (what a
    run writes as files) must be regular files where they exist. Looks only; nothing is created.
    """
    folder = Path(folder)
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return f"{folder} is not a folder"
    except OSError as exc:
        return f"{folder} cannot be read ({exc.strerror or exc})"
    hydra = folder / HYDRA_DIR
    if os.path.isdir(hydra) and not os.path.islink(hydra):
        with contextlib.suppress(OSError):
            entries += list(os.scandir(hydra))
    must_be_files = {LOCK_NAME, *files}
    for entry in entries:
        mode = entry.stat(follow_symlinks=False).st_mode
        shown = os.path.relpath(entry.path, folder)
        if stat.S_ISLNK(mode):
            return (f"{folder} holds a symbolic link, {shown} -> {os.readlink(entry.path)}: lossbench writes "
                    "no file of a run or sweep folder through a link; remove the link, or use another folder")
        in_hydra = os.path.dirname(entry.path) == str(hydra)
        should = "a folder" if entry.path == str(hydra) else (
            "a file" if entry.name in must_be_files or entry.name.endswith(".log")
            or (in_hydra and entry.name.endswith(".yaml")) else None)
        if should is not None and _kind(mode) != should:
            return (f"{folder / shown} is {_kind(mode)}, not {should} as lossbench writes it; "
                    "remove it, or use another folder")
    return None


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


class DirectoryBusy(RuntimeError):
    """Another process holds the run directory's lock."""


class RunLock:
    """An exclusive advisory lock (``flock``) on ``<run dir>/.lossbench.lock``.

    The lock file stays in the directory (empty until a run that passed its
    checks writes who holds it), so taking the lock of an existing run changes
    nothing on disk. The kernel releases the lock when its holder exits,
    however it exits, so a killed run never leaves a stale lock.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.fd: int | None = None
        self.created = False
        self.described = False

    def acquire(self, wait: bool = True, on_wait: Callable[[str], None] | None = None,
                abort: Callable[[], bool] | None = None, poll_s: float = 0.2) -> None:
        """Take the lock; if busy, call ``on_wait(holder)`` once and wait until it is free.

        Raises DirectoryBusy if busy and not ``wait``, or when ``abort()`` turns true while waiting.
        """
        self.created = not os.path.lexists(self.path)
        self.fd = open_nofollow(self.path, os.O_RDWR | os.O_CREAT)
        if not stat.S_ISREG(os.fstat(self.fd).st_mode):
            self.release()
            raise LinkRefused(self.path, "is not a regular file")
        if fcntl is None:
            return
        told = False
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                holder = self.holder()
                if not wait or (abort is not None and abort()):
                    self.release()
                    raise DirectoryBusy(holder) from None
                if not told and on_wait is not None:
                    on_wait(holder)
                    told = True
                time.sleep(poll_s)

    def holder(self) -> str:
        try:
            text = os.pread(self.fd, 4096, 0).decode(errors="replace").strip() if self.fd is not None else ""
        except OSError:
            text = ""
        return text or "another lossbench process"

    def describe_holder(self) -> None:
        """Record who holds the lock (written once the run's checks have passed)."""
        if self.fd is None:
            return
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        text = f"lossbench pid {os.getpid()} on {socket.gethostname()} since {since}"
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, text.encode(), 0)
        self.described = True

    def release(self) -> None:
        if self.fd is not None:
            if self.described:  # empty again at rest
                with contextlib.suppress(OSError):
                    os.ftruncate(self.fd, 0)
                self.described = False
            with contextlib.suppress(OSError):
                os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


def is_locked(run_dir: Path) -> bool:
    """Whether a live lossbench process holds ``run_dir``'s lock (a running run)."""
    path = Path(run_dir) / LOCK_NAME
    if fcntl is None or not path.exists():
        return False
    try:
        fd = open_nofollow(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


# Longest file name and path (Linux; the run's own files need room below its folder).
NAME_MAX, PATH_MAX = 255, 4096
# File systems nothing can be written to, whatever the permission bits say.
PSEUDO_FS = {"proc", "sysfs", "devpts", "cgroup", "cgroup2", "debugfs", "securityfs", "tracefs",
             "pstore", "bpf", "configfs", "fusectl", "mqueue", "hugetlbfs", "autofs", "efivarfs"}


def _mount_of(path: Path) -> tuple[str, set[str]] | None:
    """(file-system type, mount options) of the mount holding ``path`` (Linux), or None."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    best, found = -1, None
    text = str(path)
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) < 6 or len(rest) < 1:
            continue
        mount = fields[4].replace("\\040", " ")
        inside = text == mount or text.startswith(mount.rstrip("/") + "/") or mount == "/"
        if inside and len(mount) > best:
            best, found = len(mount), (rest[0], set(fields[5].split(",")))
    return found


def unwritable_reason(path: Path) -> str | None:
    """None if folder ``path`` exists as a writable folder or can be created, else why not.

    Looks only: nothing is created. The nearest existing ancestor must be a
    folder on a writable, real file system that this user may write to.
    """
    path = Path(os.path.abspath(path))
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > NAME_MAX:
            return (f"the folder name '{part[:40]}…' is {size} bytes long; a file system allows at most "
                    f"{NAME_MAX} bytes per name: use a shorter one")
    size = len(os.fsencode(str(path)))
    if size > PATH_MAX - 256:
        return f"the path is {size} bytes long; at most {PATH_MAX - 256} leave room for the files below it"
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    mount = _mount_of(existing.resolve())
    if mount is not None and mount[0] in PSEUDO_FS:
        return f"{existing} is on a {mount[0]} pseudo file system, where no files can be written"
    if mount is not None and "ro" in mount[1]:
        return f"{existing} is on a read-only file system"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable by this user"
    return None


def provenance(device: Any) -> dict:
    """Where a result came from: code version, libraries, hardware."""
    import torch

    import lossbench

    info: dict[str, Any] = {
        "lossbench": lossbench.__version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "host": platform.node(),
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
        ),
        "num_threads": torch.get_num_threads(),
    }
    repo = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        info["git_commit"], info["git_dirty"] = commit, bool(dirty)
    except (OSError, subprocess.SubprocessError):
        info["git_commit"], info["git_dirty"] = None, None
    return info

"""Files a run writes: atomic files with the user's umask, JSON lines, the run-directory lock, provenance."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import socket
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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            if sync:
                os.fsync(f.fileno())
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
    with open(path, "a") as f:
        f.write(json.dumps(jsonable(record)) + "\n")
        f.flush()


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None if it is missing or not valid JSON."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_jsonl(path: Path) -> list[dict]:
    """Every complete JSON line of ``path`` (a torn last line is skipped)."""
    rows = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return rows
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:
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
        self.created = not self.path.exists()
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
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
            text = self.path.read_text().strip()
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
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


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

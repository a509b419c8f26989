"""A run folder: may lossbench write there (no links among its entries, a writable file system), its
lock (one process per run folder), and the provenance a run records.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lossbench.core.io import HYDRA_DIR, LinkRefused, _kind, open_nofollow

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs on one directory are not serialised there
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lossbench.lock"


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
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
            target = os.readlink(entry.path) if stat.S_ISLNK(mode) else ""
        except FileNotFoundError:  # gone since the listing: another run's temporary file, renamed in place
            continue
        shown = os.path.relpath(entry.path, folder)
        if stat.S_ISLNK(mode):
            return (f"{folder} holds a symbolic link, {shown} -> {target}: lossbench writes "
                    "no file of a run or sweep folder through a link; remove the link, or use another folder")
        in_hydra = os.path.dirname(entry.path) == str(hydra)
        should = "a folder" if entry.path == str(hydra) else (
            "a file" if entry.name in must_be_files or entry.name.endswith(".log")
            or (in_hydra and entry.name.endswith(".yaml")) else None)
        if should is not None and _kind(mode) != should:
            return (f"{folder / shown} is {_kind(mode)}, not {should} as lossbench writes it; "
                    "remove it, or use another folder")
    return None


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
    repo = Path(__file__).resolve().parents[2]
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

"""Ctrl-C before the command has written anything: stop at once, in one line, with status 130.

From the command's first line until its first write, lossbench only imports and reads (its own
modules, torch, numpy, Hydra, the config, the run folders a report reads). A KeyboardInterrupt
there is unsafe to let travel: CPython drops one that lands in importlib's module-lock callback
("Exception ignored in ... _get_module_lock"), and the command then runs on to status 0, and one
that cuts a library's import half-way leaves that library half-imported (numpy without
``numpy.matrix``) for whatever imports it next. With nothing on disk to tidy, the answer is to
leave at once. Every way lossbench writes (``core.io``'s writers and folders, a run's signal handlers) calls
:func:`writing_begins` first, which gives Ctrl-C its usual meaning back.

Only ``os``, ``signal`` and ``sys`` are imported here: this module is the command's first import.
"""

from __future__ import annotations

import os
import signal
import sys

STOPPED = "lossbench: stopped (Ctrl-C); no file was left half-written"

_replaced: list = []  # the SIGINT handler stop_at_once replaced, while its own is in place


def stop_now(signum: int | None = None, frame: object = None) -> None:
    """Say the one line and leave with status 130, without the interpreter's finalization."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C cannot cut the goodbye
    print(STOPPED, file=sys.stderr, flush=True)
    os._exit(130)


def stop_at_once() -> None:
    """Until :func:`writing_begins`, a Ctrl-C calls :func:`stop_now` (in the main thread). A SIGINT
    the parent made this process ignore stays ignored."""
    current = signal.getsignal(signal.SIGINT)
    if current is signal.SIG_IGN or current is stop_now:
        return
    _replaced[:] = [current]
    signal.signal(signal.SIGINT, stop_now)


def writing_begins() -> None:
    """Before the first file is created or changed: the handler :func:`stop_at_once` replaced comes
    back (KeyboardInterrupt, which the command answers after tidying up). Cheap when nothing is
    pending; does nothing outside the main thread, where signal handlers cannot be set."""
    if not _replaced:
        return
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    previous = _replaced.pop()
    if signal.getsignal(signal.SIGINT) is stop_now:
        signal.signal(signal.SIGINT, previous)

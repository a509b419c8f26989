"""`python -m lossbench ARGS` as a fork of a process that has already imported lossbench's dependencies.

A fresh interpreter spends seconds of CPU importing torch, torch._dynamo (which the first
optimizer pulls in), scipy.optimize (temperature scaling) and Hydra before lossbench does
anything; relplot (scikit-learn, matplotlib: SmoothECE with smooth_ece=true, the report's
plots) only when asked for. lossbench imports most of these lazily, where they are used, so
that a run pays only for what it uses; a multiprocessing forkserver imports them all once per
test worker (``PRELOAD``), never runs a torch op, and forks a child per command. The child is
a process of its own, as a subprocess would be: its working directory, environment, stdout and
stderr (fds 1 and 2, redirected to files), signal handlers and exit status are its own, and it
ends like an interpreter does
(threading's exit hooks, atexit handlers, then the exit status of ``SystemExit`` or 1 after a
traceback). wandb is not preloaded: it is imported afresh in each child that logs to it.

On a loaded machine the kernel may refuse a fork (EAGAIN: the process or memory limit): the
forkserver then dies and the client reads an EOF, or this process cannot start a forkserver.
Such a start is retried ``FORK_TRIES`` times with a growing pause; when it still fails, the error
says so instead of an EOFError.
"""

from __future__ import annotations

import atexit
import errno
import multiprocessing
import os
import runpy
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

PRELOAD = ["torch", "torch._dynamo", "scipy.optimize", "relplot", "hydra", "lossbench.cli",
           "lossbench.lifecycle.precheck", "lossbench.lifecycle.validation", "lossbench.lifecycle.run",
           "lossbench.train.final_eval", "forked_cli"]
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(PRELOAD)
FORK_TRIES = 5  # starts of a child before giving up
BACKOFF_S = 0.5  # the pause before the second try; doubled before each next one
# What a refused fork looks like from here: the forkserver died in os.fork() (EOF on its pipe, a broken
# pipe or a refused connection), or starting the forkserver itself failed.
_REFUSED = (EOFError, BrokenPipeError, ConnectionRefusedError, ConnectionResetError, FileNotFoundError)


def _child(args: list[str], cwd: str, env: dict[str, str], out: str, err: str) -> None:
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    sys.stdin = open(os.devnull)
    sys.path.insert(0, cwd)  # as `python -m` puts the working directory first
    if "OMP_NUM_THREADS" in env:
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    sys.argv = ["lossbench", *args]
    code = 0
    try:
        runpy.run_module("lossbench", run_name="__main__", alter_sys=True)
    except SystemExit as exc:  # as the interpreter reads it: None is 0, an int itself, else print it, 1
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    # end as the interpreter does: threading's exit hooks (where joblib's loky executor stops its
    # workers, which would otherwise idle for 300 s) and non-daemon threads, then atexit handlers
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``lossbench ARGS`` run in a forked child in ``cwd``."""
    with tempfile.TemporaryDirectory(prefix="lossbench-cli-") as tmp:
        out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
        child = _start(_child, (list(args), str(cwd), dict(env), out, err), args)
        child.join(timeout)
        if child.is_alive():
            child.kill()
            child.join()
            raise TimeoutError(f"lossbench {' '.join(args)} ran past {timeout} s")
        return child.exitcode, Path(out).read_text(), Path(err).read_text()


def _start(target, arguments: tuple, args: list[str]):
    """A started child; a start refused by the kernel (EAGAIN) is retried, a bounded number of times."""
    last: BaseException | None = None
    waited = 0.0
    for attempt in range(FORK_TRIES):
        child = _CONTEXT.Process(target=target, args=arguments)
        try:
            child.start()
            return child
        except OSError as exc:
            if not isinstance(exc, _REFUSED) and exc.errno not in (errno.EAGAIN, errno.ENOMEM):
                raise
            last = exc
        except EOFError as exc:
            last = exc
        if attempt + 1 < FORK_TRIES:
            pause = BACKOFF_S * 2**attempt
            time.sleep(pause)
            waited += pause
    raise RuntimeError(
        f"could not start `lossbench {' '.join(args)}` after {FORK_TRIES} tries over {waited:.1f} s: the "
        "forkserver's fork() failed, most likely with EAGAIN (the machine is at its process or memory "
        f"limit under load); the last error: {type(last).__name__}: {last}") from last

"""tests/support/forked_cli.py on a loaded machine: a fork the kernel refuses (EAGAIN) is retried a
bounded number of times, and when it still fails the error names the cause instead of an EOFError."""

from __future__ import annotations

import errno
from pathlib import Path

import forked_cli
import pytest


class _Refusing:
    """multiprocessing's Process whose start fails ``failures`` times as a refused fork does: the
    forkserver dies in os.fork() (the client reads EOF) or this process cannot start one (EAGAIN)."""

    starts = 0

    def __init__(self, failures: int, error: BaseException):
        self.failures, self.error = failures, error

    def __call__(self, target, args):
        outer = self

        class Process:
            exitcode = 0

            def start(self):
                outer.starts += 1
                if outer.starts <= outer.failures:
                    raise outer.error
                for path in args[3:5]:
                    Path(path).write_text("ok" if path == args[3] else "")

            def join(self, timeout=None):
                pass

            def is_alive(self):
                return False

        return Process()


EAGAIN = BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")


@pytest.mark.parametrize("error", [EOFError(), EAGAIN,
                                   BrokenPipeError(errno.EPIPE, "Broken pipe")])
def test_a_refused_fork_is_retried(monkeypatch, tmp_path, error):
    fake = _Refusing(failures=2, error=error)
    monkeypatch.setattr(forked_cli._CONTEXT, "Process", fake)
    monkeypatch.setattr(forked_cli, "BACKOFF_S", 0.0)
    assert forked_cli.run(["--version"], tmp_path, {}, 10) == (0, "ok", "")
    assert fake.starts == 3


def test_a_fork_that_keeps_failing_names_the_cause(monkeypatch, tmp_path):
    fake = _Refusing(failures=100, error=EOFError())
    monkeypatch.setattr(forked_cli._CONTEXT, "Process", fake)
    monkeypatch.setattr(forked_cli, "BACKOFF_S", 0.0)
    with pytest.raises(RuntimeError, match=r"could not start `lossbench --version`.*fork.*EAGAIN"):
        forked_cli.run(["--version"], tmp_path, {}, 10)
    assert fake.starts == forked_cli.FORK_TRIES


def test_other_errors_are_not_retried(monkeypatch, tmp_path):
    fake = _Refusing(failures=1, error=PermissionError(errno.EACCES, "denied"))
    monkeypatch.setattr(forked_cli._CONTEXT, "Process", fake)
    with pytest.raises(PermissionError):
        forked_cli.run(["--version"], tmp_path, {}, 10)
    assert fake.starts == 1

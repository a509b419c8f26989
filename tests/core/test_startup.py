"""lossbench.core.startup: Ctrl-C stops at once until the command's first write."""

from __future__ import annotations

import signal
import threading

import pytest

from lossbench.core import signals, startup
from lossbench.core.io import ensure_folder, make_folders, write_text_atomic


@pytest.fixture(autouse=True)
def _sigint_as_it_was():
    before = signal.getsignal(signal.SIGINT)
    yield
    startup._replaced.clear()
    signal.signal(signal.SIGINT, before)


def test_stop_at_once_replaces_the_handler_and_the_first_write_gives_it_back(tmp_path):
    signal.signal(signal.SIGINT, signal.default_int_handler)
    startup.stop_at_once()
    assert signal.getsignal(signal.SIGINT) is startup.stop_now
    startup.stop_at_once()  # twice: the handler it replaced is still the one that comes back
    write_text_atomic(tmp_path / "a.txt", "x")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert (tmp_path / "a.txt").read_text() == "x"


@pytest.mark.parametrize("first_write", ["ensure_folder", "make_folders", "handle_signals"])
def test_every_way_of_writing_gives_ctrl_c_its_meaning_back(tmp_path, first_write):
    signal.signal(signal.SIGINT, signal.default_int_handler)
    startup.stop_at_once()
    if first_write == "ensure_folder":
        ensure_folder(tmp_path / "run")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    elif first_write == "make_folders":  # the folders of report's and evaluate's --out, and of plots
        assert make_folders(tmp_path / "out" / "plots").is_dir()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    else:
        with signals.handle_signals():  # a run: the stop request, then the handler before it
            assert signal.getsignal(signal.SIGINT) is signals._handler
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_sigint_the_parent_ignored_stays_ignored(tmp_path):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    startup.stop_at_once()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    write_text_atomic(tmp_path / "a.txt", "x")
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_a_write_outside_the_main_thread_leaves_the_handler_to_the_main_thread(tmp_path):
    signal.signal(signal.SIGINT, signal.default_int_handler)
    startup.stop_at_once()
    worker = threading.Thread(target=write_text_atomic, args=(tmp_path / "a.txt", "x"))
    worker.start()
    worker.join()
    assert signal.getsignal(signal.SIGINT) is startup.stop_now
    startup.writing_begins()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_handler_set_since_is_not_overwritten():
    signal.signal(signal.SIGINT, signal.default_int_handler)
    startup.stop_at_once()

    def own(signum, frame):
        pass

    signal.signal(signal.SIGINT, own)  # someone else's, after stop_at_once
    startup.writing_begins()
    assert signal.getsignal(signal.SIGINT) is own

"""`python -m lossbench` and the `lossbench` command: the CLI, with a Ctrl-C during its own imports
answered in one line (status 130) like one at any later moment."""

import os
import signal
import sys

STOPPED = "lossbench: stopped (Ctrl-C); no file was left half-written"


def _stopped_while_importing(signum=None, frame=None) -> None:
    """Nothing is written before the CLI has imported: say so and leave, at once. A handler rather
    than KeyboardInterrupt, which Python drops ("Exception ignored in ... _get_module_lock") when it
    lands in importlib's own callbacks, and the command then ran on to status 0."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print(STOPPED, file=sys.stderr, flush=True)
    os._exit(130)


def entry() -> None:
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.SIG_IGN:  # a Ctrl-C the parent made us ignore stays ignored
        signal.signal(signal.SIGINT, _stopped_while_importing)
    try:
        from lossbench.cli import main
    except KeyboardInterrupt:  # one that came before the handler was in place
        _stopped_while_importing()
    signal.signal(signal.SIGINT, previous)
    main()


if __name__ == "__main__":
    entry()

"""`python -m lossbench` and the `lossbench` command: the CLI, with a Ctrl-C during its own imports
answered in one line (status 130) like one at any later moment."""

import os
import signal
import sys


def entry() -> None:
    try:
        from lossbench.cli import main
    except KeyboardInterrupt:  # nothing was written yet
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("lossbench: stopped (Ctrl-C); no file was left half-written", file=sys.stderr, flush=True)
        os._exit(130)
    main()


if __name__ == "__main__":
    entry()

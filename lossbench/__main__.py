import os
import signal
import sys

try:
    from lossbench.cli import main
except KeyboardInterrupt:  # Ctrl-C while the command's own modules import: nothing was written yet
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print("lossbench: stopped (Ctrl-C); no file was left half-written", file=sys.stderr, flush=True)
    os._exit(130)

main()

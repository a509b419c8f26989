"""The rich Console every command prints its tables with.

In a terminal: the terminal's width. Off a terminal (piped, redirected into a file), rich would assume
80 columns (or $COLUMNS) and cut cells ("97.33 ± 0.51 (…") or fold descriptions; there a table is as
wide as its longest line needs, so what lands in the file is whole.
"""

from __future__ import annotations

# Off a terminal: wide enough for any table (a table is never wider than its content needs).
UNCUT_WIDTH = 100_000


def table_console(stderr: bool = False):
    """A rich Console on stdout (or stderr) that never cuts a table off a terminal."""
    from rich.console import Console

    console = Console(stderr=stderr)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, width=UNCUT_WIDTH)

"""Text from run files made safe for each output format: one visible line first, then the format's escaping.

Everything a report shows that came from a file (loss and noise names, run
paths, overrides, error messages, metric and key names) passes through one of
these functions; numbers the report formats itself need none.
"""

from __future__ import annotations

import html
import re
import unicodedata

# Unicode categories that do not show as themselves: controls (newline, ESC, NUL), format characters
# (bidi overrides, zero-width), surrogates (undecodable bytes in file names), line/paragraph separators.
_INVISIBLE = {"Cc", "Cf", "Cs", "Zl", "Zp"}
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_LATEX = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
}
_MD_ALWAYS = set("\\`*[|~$")  # "]" needs no escape once "[" has one
_HTML_IN_MD = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def _visible(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


def printable(value: object, limit: int | None = None) -> str:
    """``value`` as one line of visible text, cut to ``limit`` characters (with "…").

    Newlines, carriage returns, ESC, NUL, U+2028, bidi overrides and the like
    become escapes (``\\n``, ``\\x1b``, ``\\u202e``), so a value can neither
    end a line (a LaTeX comment, a Markdown table row) nor drive a terminal.
    """
    text = "".join(_visible(c) if unicodedata.category(c) in _INVISIBLE else c for c in str(value))
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text


def latex(value: object) -> str:
    """Text for LaTeX's body (a cell, a caption): the ten special characters, plus < > |, as commands."""
    return "".join(_LATEX.get(c, c) for c in printable(value))


def latex_comment(value: object) -> str:
    """Text for the rest of a ``%`` comment line: anything goes but a line end, and there is none."""
    return printable(value)


def markdown(value: object) -> str:
    """Text for GitHub Markdown: ``& < >`` as entities (no raw HTML), markup characters backslash-escaped.

    ``_`` is escaped unless it sits between two letters or digits, where
    CommonMark never reads it as emphasis (``nce_rce`` stays as it is).
    """
    text = printable(value)
    out = []
    for i, c in enumerate(text):
        if c in _HTML_IN_MD:
            out.append(_HTML_IN_MD[c])
        elif c in _MD_ALWAYS:
            out.append("\\" + c)
        elif c == "_" and not (0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()):
            out.append("\\_")
        else:
            out.append(c)
    return "".join(out)


def html_text(value: object) -> str:
    """Text for HTML, quotes included (safe in attributes as well as in elements)."""
    return html.escape(printable(value), quote=True)


def rich_text(value: object) -> str:
    """Text for rich console markup: ``[`` cannot open a tag, a trailing backslash cannot eat one."""
    from rich.markup import escape

    return escape(printable(value))


def csv_cell(value: object) -> object:
    """A CSV cell a spreadsheet will not run: text starting with = + - @ (or tab, CR) gets a leading '.

    Plain numbers written as text (``-0.5``) stay as they are; non-text values pass through.
    """
    if isinstance(value, str) and value.startswith(_CSV_TRIGGERS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def file_stem(name: object, default: str = "figure") -> str:
    """A file name stem that stays inside its folder: letters, digits, ``. _ -`` only, no leading dot."""
    stem = _FILE_CHARS.sub("_", str(name)).lstrip(".-")[:100]
    return stem or default

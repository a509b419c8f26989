"""A comparison table and the run status as Markdown, LaTeX, CSV, HTML or a rich terminal table.

Every text that came from a run's files (labels, key and metric names, run
paths, overrides, errors) goes through its format's escaping (report/escape.py).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lossbench.report import escape
from lossbench.report.collect import STATUSES
from lossbench.report.tables import MIN_SEEDS, ComparisonTable, metric_scale

FORMATS = ("md", "latex", "csv", "html")
SUFFIXES = {".md": "md", ".markdown": "md", ".tex": "latex", ".csv": "csv", ".html": "html", ".htm": "html"}
_DIRECTION_TEXT = {"max": "higher is better", "min": "lower is better", "abs": "closer to 0 is better",
                   None: "no direction, no best marked"}
_KEY_NAMES = {"loss_family": "family"}
_SHOWN_STATUSES = STATUSES[:4]  # always counted; any other status only when some run has it
_DETAIL_CHARS = 300


@dataclass(frozen=True)
class Markup:
    """How one output format writes the pieces of a cell, and how it escapes text from the files."""

    pm: str
    dash: str
    dagger: str
    bold: Callable[[str], str]
    escape: Callable[[object], str]
    best: str = ""  # how the legend names the best mark (default: the word "bold", in bold)
    few: str = "‡"  # the best mean, not marked: too few seeds to test it against the runner-up

    def best_mark(self) -> str:
        return self.best or self.bold("bold")


MARKUP = {
    "md": Markup("±", "–", "†", lambda s: f"**{s}**", escape.markdown),
    "latex": Markup("$\\pm$", "--", "$^\\dagger$", lambda s: f"\\textbf{{{s}}}", escape.latex,
                    few="$^\\ddagger$"),
    "html": Markup("±", "–", "†", lambda s: f"<b>{s}</b>", escape.html_text),
    "rich": Markup("±", "–", "†", lambda s: f"[bold]{s}[/bold]", escape.rich_text),
    # a console that shows no styles (output piped or redirected): the best is starred instead
    "plain": Markup("±", "–", "†", lambda s: f"*{s}*", escape.rich_text, best="*…*"),
    "text": Markup("±", "–", "†", lambda s: f"*{s}*", escape.printable, best="*…*"),
}


def default_digits(metric: str) -> int:
    """Two decimals for figures shown in %, three for the rest."""
    return 2 if metric_scale(metric) == 100 else 3


def _count(n: int, runs: int) -> str:
    return f"({n})" if n == runs else f"({n}/{runs})"


def cell_text(mean: float, std: float, n: int, runs: int, scale: float, digits: int,
              markup: Markup = MARKUP["text"]) -> str:
    """"mean ± std (n)": std only from two values on; "(k/n)" when only k of the n runs gave a value."""
    if runs == 0:
        return ""
    if n == 0:
        return f"{markup.dash} {_count(n, runs)}"
    text = f"{mean * scale:.{digits}f}"
    if n > 1 and not math.isnan(std):
        text += f" {markup.pm} {std * scale:.{digits}f}"
    return f"{text} {_count(n, runs)}"


def _key_name(key: str) -> str:
    return _KEY_NAMES.get(key, key)


def _too_few(cell: pd.Series) -> bool:
    """Whether the cell's test against the runner-up pairs fewer than MIN_SEEDS seeds (None: no test)."""
    flag = cell.get("too_few_seeds")
    return isinstance(flag, (bool, np.bool_)) and bool(flag)


def marked(text: str, cell: pd.Series, markup: Markup) -> str:
    """A cell's text with its marks: the best in bold (dagger: not significant), or the best mean with
    a double dagger and no bold when its test rests on fewer than MIN_SEEDS seeds a side."""
    if not cell["best"]:
        return text
    if _too_few(cell):
        return text + markup.few
    return markup.bold(text) + (markup.dagger if cell["not_significant"] else "")


def describe(table: ComparisonTable, fmt: str = "text") -> str:
    """The table's title: metric, unit, the setting (when the runs were split by one), what a cell holds,
    which way is better (names escaped for ``fmt``)."""
    m = MARKUP[fmt]
    unit = f" {m.escape('(%)')}" if metric_scale(table.metric) == 100 else ""
    rows = " / ".join(m.escape(_key_name(k)) for k in table.row_keys)
    cols = " / ".join(m.escape(k) for k in table.col_keys)
    setting = f" for {m.escape(table.setting_name)}" if table.setting else ""
    return (f"{m.escape(table.metric)}{unit}{setting}: mean {m.pm} std over {table.replicates} (runs); "
            f"{_DIRECTION_TEXT[table.direction]}; rows {rows}, columns {cols}")


def legend(table: ComparisonTable, fmt: str) -> str:
    """What the marks mean, in the format's own markup."""
    from lossbench.metrics.views import view_text

    m = MARKUP[fmt]
    view = view_text(table.metric)
    parts = [f"{m.escape(table.metric)}: {view}"] if view else []
    if table.direction is not None:
        parts.append(f"{m.best_mark()}: best in its column")
        unit = "seeds" if table.replicates == "seeds" else "replicates"
        parts.append(f"{m.dagger}: not significantly better than the runner-up "
                     f"({table.test}, alpha = {table.alpha:g})")
        if (table.cells["too_few_seeds"] == True).any():  # noqa: E712 (None, True or False)
            parts.append(f"{m.few}: highest mean in its column, not marked best: its test against the "
                         f"runner-up rests on fewer than {MIN_SEEDS} {unit} a side")
        parts.append("avg rank: mean over columns of the row's rank in each column (1 = best)")
    parts.append("(k/n): only k of the n runs gave a value; the others diverged, failed, "
                 "are unfinished or corrupt")
    return ". ".join(parts) + "."


def test_lines(table: ComparisonTable) -> list[str]:
    """Per column, the test behind its best mark (raw text): which rows, which test, how many seeds, p."""
    lines = []
    shown_from = 1 if table.row_keys[0] == "loss_family" and len(table.row_keys) > 1 else 0
    for col in table.cols:
        for row in table.rows:
            cell = table.cell(row, col)
            if cell is None or not cell["best"] or not isinstance(cell["test"], str):
                continue
            p, pairs = cell["p_value"], int(cell["pairs"])
            if _too_few(cell):
                verdict = f"fewer than {MIN_SEEDS} seeds a side: not marked best"
            else:
                verdict = "not significant" if cell["not_significant"] else "significant"
                verdict += f" at alpha = {table.alpha:g}"
            p_text = f"p = {p:.2g}" if not math.isnan(p) else "no p (fewer than 2 seeds pair up)"
            seeds = f"{pairs} seed{'s' if pairs != 1 else ''} a side"
            lines.append(f"{' / '.join(col)}: {' / '.join(row[shown_from:])} against {cell['runner_up']}, "
                         f"{cell['test']} on {seeds}, {p_text}: {verdict}")
    return lines


def display_frame(table: ComparisonTable, fmt: str, digits: int | None = None) -> pd.DataFrame:
    """The table as strings in ``fmt``'s markup: one row per row label, one column per column label."""
    m = MARKUP[fmt]
    scale = metric_scale(table.metric)
    digits = default_digits(table.metric) if digits is None else digits
    data = []
    for row in table.rows:
        line = []
        for col in table.cols:
            cell = table.cell(row, col)
            if cell is None:
                line.append("")
                continue
            text = cell_text(cell["mean"], cell["std"], int(cell["n"]), int(cell["runs"]), scale, digits, m)
            line.append(marked(text, cell, m))
        if table.direction is not None:
            rank = table.avg_rank.get(row, math.nan)
            line.append("" if pd.isna(rank) else f"{rank:.2f}")
        data.append(line)
    columns = [" / ".join(m.escape(v) for v in c) for c in table.cols]
    columns += ["avg rank"] if table.direction is not None else []
    index = pd.MultiIndex.from_tuples([tuple(m.escape(v) for v in r) for r in table.rows],
                                      names=[m.escape(_key_name(k)) for k in table.row_keys])
    return pd.DataFrame(data, index=index, columns=columns)


def _flat_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Row labels as leading columns, a repeated first label (the family) shown once per group."""
    flat = frame.reset_index()
    if frame.index.nlevels > 1:
        first = flat.columns[0]
        flat[first] = flat[first].where(flat[first] != flat[first].shift())
        flat[first] = flat[first].fillna("")
    return flat


def status_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Runs per status: completed, diverged, failed, unfinished (and corrupt, or any other, when seen)."""
    counts = {s: 0 for s in _SHOWN_STATUSES}
    counts.update({str(k): int(v) for k, v in frame["status"].value_counts().items()})
    return counts


def _show_path(path: object) -> str:
    """A run directory relative to the working directory when it lies below it, else as it is."""
    if not isinstance(path, str):
        return "" if path is None or (isinstance(path, float) and math.isnan(path)) else str(path)
    cwd = Path.cwd()
    return str(Path(path).relative_to(cwd)) if Path(path).is_relative_to(cwd) else path


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def status_listing(frame: pd.DataFrame) -> pd.DataFrame:
    """Every run that is not completed: status, run, overrides, what happened (raw text, not escaped)."""
    lines = []
    for _, r in frame[frame["status"] != "completed"].iterrows():
        status = r["status"]
        error = _text(r.get("error"))
        if status == "failed":
            detail = error.splitlines()[0][:160] if error.strip() else ""
        elif status == "corrupt":
            detail = error[:_DETAIL_CHARS]
        elif status == "diverged":
            epoch = pd.to_numeric(pd.Series([r.get("diverged_epoch")]), errors="coerce").iloc[0]
            detail = "loss not finite" + ("" if pd.isna(epoch) else f" at epoch {int(epoch)}")
        elif status == "unfinished":
            logged = pd.to_numeric(pd.Series([r.get("epochs_logged")]), errors="coerce").iloc[0]
            logged = 0 if pd.isna(logged) else int(logged)
            detail = f"{logged} epoch(s) logged; no summary.json or failure.json (still running, or killed)"
        else:
            detail = ""
        lines.append({"status": status, "run": _show_path(r.get("run_dir")),
                      "overrides": _text(r.get("overrides")), "detail": detail})
    return pd.DataFrame(lines, columns=["status", "run", "overrides", "detail"])


def status_line(frame: pd.DataFrame) -> str:
    counts = status_counts(frame)
    return f"{len(frame)} in all: " + ", ".join(f"{v} {k}" for k, v in counts.items())


def to_markdown(table: ComparisonTable, frame: pd.DataFrame, digits: int | None = None) -> str:
    """Title, table, legend, warnings and the run status, as GitHub Markdown (no raw HTML gets through)."""
    flat = _flat_rows(display_frame(table, "md", digits))
    align = ["left"] * len(table.row_keys) + ["right"] * (flat.shape[1] - len(table.row_keys))
    body = flat.to_markdown(index=False, disable_numparse=True, colalign=align)
    parts = [f"**{describe(table, 'md')}**", body, legend(table, "md")]
    tests = test_lines(table)
    if tests:
        parts.append("**Tests.** " + "; ".join(escape.markdown(t) for t in tests) + ".")
    parts += [f"Warning: {escape.markdown(w)}" for w in table.warnings]
    parts.append(f"**Runs.** {escape.markdown(status_line(frame))}.")
    listing = status_listing(frame)
    if len(listing):
        parts.append(listing.map(escape.markdown).to_markdown(index=False, disable_numparse=True))
    return "\n\n".join(parts) + "\n"


def _latex_cell(cell: pd.Series | None, scale: float, digits: int) -> str:
    """Two tabular cells, split at the decimal point (``r@{}l``), so that a column aligns on it."""
    m = MARKUP["latex"]
    if cell is None or int(cell["runs"]) == 0:
        return " & "
    n, runs = int(cell["n"]), int(cell["runs"])
    if n == 0:
        return f"\\multicolumn{{2}}{{c}}{{{m.dash} {_count(n, runs)}}}"
    whole, point, fraction = f"{cell['mean'] * scale:.{digits}f}".partition(".")
    rest = f"{point}{fraction}"
    if n > 1 and not math.isnan(cell["std"]):
        rest += f" {m.pm} {cell['std'] * scale:.{digits}f}"
    rest += f" {_count(n, runs)}"
    if cell["best"] and _too_few(cell):
        rest += m.few
    elif cell["best"]:
        whole, rest = m.bold(whole), m.bold(rest) + (m.dagger if cell["not_significant"] else "")
    return f"{whole} & {rest}"


def to_latex(table: ComparisonTable, frame: pd.DataFrame, digits: int | None = None) -> str:
    """A booktabs table (\\usepackage{booktabs}), numbers aligned on the decimal point: each column is
    split there (``r@{}l``); the legend in the caption; warnings and the run status as ``%`` comments."""
    scale = metric_scale(table.metric)
    digits = default_digits(table.metric) if digits is None else digits
    has_rank = table.direction is not None
    n_keys = len(table.row_keys)
    spec = "l" * n_keys + "r@{}l" * len(table.cols) + ("r" if has_rank else "")
    header = [escape.latex(_key_name(k)) for k in table.row_keys]
    header += [f"\\multicolumn{{2}}{{c}}{{{' / '.join(escape.latex(v) for v in col)}}}" for col in table.cols]
    header += ["avg rank"] if has_rank else []
    caption = f"{describe(table, 'latex')}. {legend(table, 'latex')}"
    lines = ["% lossbench report", "\\begin{table}", "\\centering", f"\\caption{{{caption}}}",
             f"\\begin{{tabular}}{{{spec}}}", "\\toprule", " & ".join(header) + " \\\\", "\\midrule"]
    ranks = table.avg_rank if has_rank else None
    for i, row in enumerate(table.rows):
        grouped = n_keys > 1
        if grouped and i > 0 and row[0] != table.rows[i - 1][0]:
            lines.append("\\midrule")
        labels = [escape.latex(v) for v in row]
        if grouped and i > 0 and row[0] == table.rows[i - 1][0]:
            labels[0] = ""
        cells = [_latex_cell(table.cell(row, col), scale, digits) for col in table.cols]
        if has_rank:
            rank = ranks.get(row, math.nan)
            cells.append("" if pd.isna(rank) else f"{rank:.2f}")
        lines.append(" & ".join(labels + cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    comments = [*(f"test: {t}" for t in test_lines(table)), *table.warnings, status_line(frame)]
    comments += [f"{r.status}: {r.run} {r.overrides} {r.detail}".rstrip()
                 for r in status_listing(frame).itertuples()]
    lines += [f"% {escape.latex_comment(c)}" for c in comments]
    return "\n".join(lines) + "\n"


def to_html(table: ComparisonTable, frame: pd.DataFrame, digits: int | None = None) -> str:
    """An HTML fragment: caption, table, legend, warnings, the run status (every file's text escaped)."""
    body = display_frame(table, "html", digits).to_html(escape=False, sparsify=True, border=0,
                                                        classes="lossbench")
    parts = [f"<p><b>{describe(table, 'html')}</b></p>", body, f"<p>{legend(table, 'html')}</p>"]
    tests = test_lines(table)
    if tests:
        parts.append("<p><b>Tests.</b> " + "; ".join(escape.html_text(t) for t in tests) + ".</p>")
    parts += [f"<p>Warning: {escape.html_text(w)}</p>" for w in table.warnings]
    parts.append(f"<p><b>Runs.</b> {escape.html_text(status_line(frame))}.</p>")
    listing = status_listing(frame)
    if len(listing):
        parts.append(listing.map(escape.html_text).to_html(index=False, border=0, escape=False,
                                                           classes="lossbench-status"))
    return "\n".join(parts) + "\n"


def csv_text(frame: pd.DataFrame) -> str:
    """``frame`` as CSV, its text cells neutralised for spreadsheets (escape.csv_cell)."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(escape.csv_cell).astype(object)
    safe.columns = [escape.csv_cell(str(c)) for c in safe.columns]
    out = io.StringIO()
    safe.to_csv(out, index=False)
    return out.getvalue()


def csv_cells(table: ComparisonTable) -> pd.DataFrame:
    """One line per cell, unscaled: the setting's keys (when the runs were split by setting), row and
    column labels, metric, mean, std, n, runs, best, runner-up, test, pairs, p, avg rank."""
    cells = table.cells.reset_index()
    cells.insert(len(table.row_keys) + len(table.col_keys), "metric", table.metric)
    for i, (key, value) in enumerate(table.setting.items()):
        cells.insert(i, key, value)
    return cells


def to_csv(table: ComparisonTable) -> str:
    """The cells (csv_cells) as CSV."""
    return csv_text(csv_cells(table))


def render(table: ComparisonTable, frame: pd.DataFrame, fmt: str, digits: int | None = None) -> str:
    """The table in ``fmt`` (one of FORMATS)."""
    if fmt == "md":
        return to_markdown(table, frame, digits)
    if fmt == "latex":
        return to_latex(table, frame, digits)
    if fmt == "html":
        return to_html(table, frame, digits)
    if fmt == "csv":
        return to_csv(table)
    raise ValueError(f"unknown format '{fmt}'; known: {', '.join(FORMATS)}")


def render_all(tables: list[tuple[ComparisonTable, pd.DataFrame]], fmt: str,
               digits: int | None = None) -> str:
    """Several tables (one per setting, each with its runs) in ``fmt``: one after the other; CSV as one
    file whose lines name their setting."""
    if fmt == "csv" and len(tables) > 1:
        return csv_text(pd.concat([csv_cells(t) for t, _ in tables], ignore_index=True))
    return "\n".join(render(t, f, fmt, digits) for t, f in tables)


def format_for(path: str | Path, fmt: str | None) -> str:
    """``fmt`` if given, else the format that the file's suffix names."""
    if fmt:
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"cannot tell the format of '{escape.printable(path)}' from its suffix; "
                         f"use --format ({', '.join(FORMATS)}) or one of {', '.join(SUFFIXES)}")
    return SUFFIXES[suffix]


def styled(console) -> bool:
    """Whether ``console`` shows bold text (a real terminal); else the best cell is starred."""
    return bool(console.is_terminal and not console.is_dumb_terminal)


def print_rich(table: ComparisonTable, frame: pd.DataFrame, digits: int | None = None, console=None) -> None:
    """The table, legend, warnings and run status in the terminal (best cell bold, or *starred* when the
    output shows no styles, e.g. piped)."""
    from rich.table import Table

    from lossbench.core.console import table_console

    console = console or table_console()
    fmt = "rich" if styled(console) else "plain"
    shown = display_frame(table, fmt, digits)
    grid = Table(title=describe(table, fmt), caption=legend(table, fmt), caption_justify="left")
    for name in shown.index.names:
        grid.add_column(str(name), style="cyan" if name == "family" else None, no_wrap=True)
    for name in shown.columns:
        grid.add_column(str(name), justify="right", no_wrap=True)
    labels = list(shown.index)
    for i, (label, values) in enumerate(zip(labels, shown.itertuples(index=False), strict=True)):
        first_of_group = i == 0 or label[0] != labels[i - 1][0]
        last_of_group = i == len(labels) - 1 or label[0] != labels[i + 1][0]
        heads = [label[0] if first_of_group or len(label) == 1 else "", *label[1:]]
        grid.add_row(*heads, *values, end_section=last_of_group and len(label) > 1)
    console.print(grid)
    for line in test_lines(table):
        console.print(f"test: {escape.rich_text(line)}", highlight=False)
    for warning in table.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape.rich_text(warning)}", highlight=False)
    print_status(frame, console)


def print_status(frame: pd.DataFrame, console=None) -> None:
    """Counts per status and every run that is not completed."""
    from rich.table import Table

    from lossbench.core.console import table_console

    console = console or table_console()
    console.print(f"[bold]Runs[/bold]: {escape.rich_text(status_line(frame))}", highlight=False)
    listing = status_listing(frame)
    if len(listing):
        grid = Table(show_header=True, header_style="bold")
        for name in listing.columns:
            grid.add_column(name, overflow="fold")
        colour = {"failed": "red", "diverged": "yellow", "unfinished": "magenta", "corrupt": "red"}
        for r in listing.itertuples(index=False):
            grid.add_row(f"[{colour.get(r.status, 'white')}]{escape.rich_text(r.status)}[/]",
                         escape.rich_text(r.run), escape.rich_text(r.overrides), escape.rich_text(r.detail))
        console.print(grid)

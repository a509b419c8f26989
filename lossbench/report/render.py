"""A comparison table and the run status as Markdown, LaTeX, CSV, HTML or a rich terminal table."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lossbench.report.collect import STATUSES
from lossbench.report.tables import ComparisonTable, metric_scale

FORMATS = ("md", "latex", "csv", "html")
SUFFIXES = {".md": "md", ".markdown": "md", ".tex": "latex", ".csv": "csv", ".html": "html", ".htm": "html"}
_DIRECTION_TEXT = {"max": "higher is better", "min": "lower is better", "abs": "closer to 0 is better",
                   None: "no direction, no best marked"}
_KEY_NAMES = {"loss_family": "family"}


@dataclass(frozen=True)
class Markup:
    """How one output format writes the pieces of a cell."""

    pm: str
    dash: str
    dagger: str
    bold: Callable[[str], str]
    escape: Callable[[str], str]


MARKUP = {
    "md": Markup("±", "–", "†", lambda s: f"**{s}**", lambda s: s.replace("|", "\\|")),
    "latex": Markup("$\\pm$", "--", "$^\\dagger$", lambda s: f"\\textbf{{{s}}}", lambda s: s),
    "html": Markup("±", "–", "†", lambda s: f"<b>{s}</b>", html.escape),
    "rich": Markup("±", "–", "†", lambda s: f"[bold]{s}[/bold]", lambda s: s.replace("[", "\\[")),
    "text": Markup("±", "–", "†", lambda s: s, lambda s: s),
}


def default_digits(metric: str) -> int:
    """Two decimals for figures shown in %, three for the rest."""
    return 2 if metric_scale(metric) == 100 else 3


def cell_text(mean: float, std: float, n: int, runs: int, scale: float, digits: int,
              markup: Markup = MARKUP["text"]) -> str:
    """"mean ± std (n)": std only from two values on; "(k/n)" when only k of the n runs gave a value."""
    if runs == 0:
        return ""
    count = f"({n})" if n == runs else f"({n}/{runs})"
    if n == 0:
        return f"{markup.dash} {count}"
    text = f"{mean * scale:.{digits}f}"
    if n > 1 and not math.isnan(std):
        text += f" {markup.pm} {std * scale:.{digits}f}"
    return f"{text} {count}"


def describe(table: ComparisonTable) -> str:
    """The table's title: metric, unit, what a cell holds, which way is better."""
    unit = " (%)" if metric_scale(table.metric) == 100 else ""
    return (f"{table.metric}{unit}: mean ± std over seeds (runs); {_DIRECTION_TEXT[table.direction]}; "
            f"rows {' / '.join(_KEY_NAMES.get(k, k) for k in table.row_keys)}, "
            f"columns {' / '.join(table.col_keys)}")


def legend(table: ComparisonTable, fmt: str) -> str:
    """What the marks mean, in the format's own markup."""
    from lossbench.metrics.views import view_text

    m = MARKUP[fmt]
    view = view_text(table.metric)
    parts = [f"{m.escape(table.metric)}: {view}"] if view else []
    if table.direction is not None:
        parts.append(f"{m.bold('bold')}: best in its column")
        parts.append(f"{m.dagger}: not significantly better than the runner-up "
                     f"({table.test}, alpha = {table.alpha:g}; also when fewer than 2 seeds pair up)")
        parts.append("avg rank: mean over columns of the row's rank in each column (1 = best)")
    parts.append("(k/n): only k of the n runs gave a value; the others diverged, failed or are unfinished")
    return ". ".join(parts) + "."


def display_frame(table: ComparisonTable, fmt: str, digits: int | None = None) -> pd.DataFrame:
    """The table as strings in ``fmt``'s markup: one row per row label, one column per column label."""
    m = MARKUP[fmt]
    scale = metric_scale(table.metric)
    digits = default_digits(table.metric) if digits is None else digits
    col_names = [" / ".join(c) for c in table.cols]
    data = []
    for row in table.rows:
        line = []
        for col in table.cols:
            cell = table.cell(row, col)
            if cell is None:
                line.append("")
                continue
            text = m.escape(cell_text(cell["mean"], cell["std"], int(cell["n"]), int(cell["runs"]),
                                      scale, digits, m))
            if cell["best"]:
                text = m.bold(text) + (m.dagger if cell["not_significant"] else "")
            line.append(text)
        if table.direction is not None:
            rank = table.avg_rank.get(row, math.nan)
            line.append("" if pd.isna(rank) else f"{rank:.2f}")
        data.append(line)
    columns = col_names + (["avg rank"] if table.direction is not None else [])
    index = pd.MultiIndex.from_tuples([tuple(m.escape(v) for v in r) for r in table.rows],
                                      names=[_KEY_NAMES.get(k, k) for k in table.row_keys])
    return pd.DataFrame(data, index=index, columns=[m.escape(c) for c in columns])


def _flat_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Row labels as leading columns, a repeated first label (the family) shown once per group."""
    flat = frame.reset_index()
    if frame.index.nlevels > 1:
        first = flat.columns[0]
        flat[first] = flat[first].where(flat[first] != flat[first].shift())
        flat[first] = flat[first].fillna("")
    return flat


def status_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Runs per status: completed, diverged, failed, unfinished (and any other status seen)."""
    counts = {s: 0 for s in STATUSES}
    counts.update(frame["status"].value_counts().to_dict())
    return counts


def _show_path(path: object) -> str:
    """A run directory relative to the working directory when it lies below it, else as it is."""
    if not isinstance(path, str):
        return "" if path is None or (isinstance(path, float) and math.isnan(path)) else str(path)
    cwd = Path.cwd()
    return str(Path(path).relative_to(cwd)) if Path(path).is_relative_to(cwd) else path


def status_listing(frame: pd.DataFrame) -> pd.DataFrame:
    """Every run that is not completed: status, run, overrides, what happened."""
    lines = []
    for _, r in frame[frame["status"] != "completed"].iterrows():
        status = r["status"]
        if status == "failed":
            detail = str(r.get("error", "") or "").splitlines()[0][:160] if r.get("error") else ""
        elif status == "diverged":
            epoch = r.get("diverged_epoch")
            detail = "loss not finite" + ("" if pd.isna(epoch) else f" at epoch {int(epoch)}")
        elif status == "unfinished":
            logged = r.get("epochs_logged")
            logged = 0 if logged is None or pd.isna(logged) else int(logged)
            detail = f"{logged} epoch(s) logged; no summary.json or failure.json (still running, or killed)"
        else:
            detail = ""
        overrides = r.get("overrides")
        lines.append({"status": status, "run": _show_path(r.get("run_dir")),
                      "overrides": overrides if isinstance(overrides, str) else "", "detail": detail})
    return pd.DataFrame(lines, columns=["status", "run", "overrides", "detail"])


def status_line(frame: pd.DataFrame) -> str:
    counts = status_counts(frame)
    return f"{len(frame)} in all: " + ", ".join(f"{v} {k}" for k, v in counts.items())


def to_markdown(table: ComparisonTable, frame: pd.DataFrame, digits: int | None = None) -> str:
    """Title, table, legend, warnings and the run status, as GitHub Markdown."""
    flat = _flat_rows(display_frame(table, "md", digits))
    align = ["left"] * len(table.row_keys) + ["right"] * (flat.shape[1] - len(table.row_keys))
    body = flat.to_markdown(index=False, disable_numparse=True, colalign=align)
    parts = [f"**{describe(table)}**", body, legend(table, "md")]
    parts += [f"Warning: {w}" for w in table.warnings]
    parts.append(f"**Runs.** {status_line(frame)}.")
    listing = status_listing(frame)
    if len(listing):
        escaped = listing.map(lambda s: str(s).replace("|", "\\|"))
        parts.append(escaped.to_markdown(index=False, disable_numparse=True))
    return "\n\n".join(parts) + "\n"


def to_latex(table: ComparisonTable, frame: pd.DataFrame, digits: int | None = None) -> str:
    """A booktabs table (\\usepackage{booktabs, multirow}); legend in the caption, status as comments."""
    shown = display_frame(table, "latex", digits)
    styler = shown.style.format_index(escape="latex", axis=0).format_index(escape="latex", axis=1)
    caption = f"{describe(table)}. {legend(table, 'latex')}".replace("%", "\\%").replace("_", "\\_")
    caption = caption.replace("±", "$\\pm$")
    latex = styler.to_latex(hrules=True, multirow_align="t", clines="skip-last;data",
                            caption=caption, position_float="centering")
    latex = re.sub(r"\\cline\{[^}]*\}\n\\bottomrule", r"\\bottomrule", latex)  # no rule above the last
    comments = [f"% {w}" for w in table.warnings] + [f"% {status_line(frame)}"]
    comments += [f"% {r.status}: {r.run} {r.overrides} {r.detail}".rstrip()
                 for r in status_listing(frame).itertuples()]
    return f"% lossbench report\n{latex}" + "\n".join(comments) + "\n"


def to_html(table: ComparisonTable, frame: pd.DataFrame, digits: int | None = None) -> str:
    """An HTML fragment: caption, table, legend, warnings, the run status."""
    body = display_frame(table, "html", digits).to_html(escape=False, sparsify=True, border=0,
                                                        classes="lossbench")
    parts = [f"<p><b>{html.escape(describe(table))}</b></p>", body,
             f"<p>{legend(table, 'html')}</p>"]
    parts += [f"<p>Warning: {html.escape(w)}</p>" for w in table.warnings]
    parts.append(f"<p><b>Runs.</b> {html.escape(status_line(frame))}.</p>")
    listing = status_listing(frame)
    if len(listing):
        parts.append(listing.to_html(index=False, border=0, classes="lossbench-status"))
    return "\n".join(parts) + "\n"


def to_csv(table: ComparisonTable) -> str:
    """One line per cell, unscaled: row and column labels, mean, std, n, runs, best, tests, avg rank."""
    cells = table.cells.reset_index()
    cells.insert(len(table.row_keys) + len(table.col_keys), "metric", table.metric)
    return cells.to_csv(index=False)


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


def format_for(path: str | Path, fmt: str | None) -> str:
    """``fmt`` if given, else the format that the file's suffix names."""
    if fmt:
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"cannot tell the format of '{path}' from its suffix; "
                         f"use --format ({', '.join(FORMATS)}) or one of {', '.join(SUFFIXES)}")
    return SUFFIXES[suffix]


def print_rich(table: ComparisonTable, frame: pd.DataFrame, digits: int | None = None, console=None) -> None:
    """The table, legend, warnings and run status in the terminal."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    shown = display_frame(table, "rich", digits)
    grid = Table(title=describe(table), caption=legend(table, "rich"), caption_justify="left")
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
    for warning in table.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    print_status(frame, console)


def print_status(frame: pd.DataFrame, console=None) -> None:
    """Counts per status and every run that is not completed."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    console.print(f"[bold]Runs[/bold]: {status_line(frame)}", highlight=False)
    listing = status_listing(frame)
    if len(listing):
        grid = Table(show_header=True, header_style="bold")
        for name in listing.columns:
            grid.add_column(name, overflow="fold")
        colour = {"failed": "red", "diverged": "yellow", "unfinished": "magenta"}
        for r in listing.itertuples(index=False):
            grid.add_row(f"[{colour.get(r.status, 'white')}]{r.status}[/]", escape(r.run),
                         escape(r.overrides), escape(r.detail))
        console.print(grid)

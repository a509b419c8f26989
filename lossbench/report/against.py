"""`lossbench report DIR --against NAME`: our cells beside a preset's published numbers, and its claims.

For every cell (metric, loss, noise) that the preset's data file publishes a number for, or that our
runs hold: ours (mean +- std over the completed runs, n) and, for each source of published numbers
(the paper, a reproduction, ...: the data file's ``sources``), its value (mean +- std, n, confidence
mark), the difference ours minus it, and whether it lies within our seeds' spread (between the
smallest and the largest of our runs; needs two runs). Where nothing is published, lossbench's own
reference table stands in, labelled as such; a cell with no number at all still shows ours. Each claim
of the data file is then checked on our means: held, not held, or undetermined (a cell without runs).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lossbench.protocols.catalogue import (
    MARKS,
    PUBLISHED,
    REFERENCE,
    Cell,
    Claim,
    Protocol,
    ProtocolError,
    Source,
    load_protocol,
    preset_names,
)
from lossbench.report import escape
from lossbench.report.render import MARKUP, csv_text, status_line
from lossbench.report.tables import _label, metric_direction, metric_scale

# Overrides that choose a cell of the grid or do not change what a run computes.
_GRID_OR_HOUSEKEEPING = {"loss", "noise", "seed", "dataset", "dataset.fold", "experiment", "data_dir",
                         "dataset.data_dir",
                         "dataset.download", "trainer.progress", "trainer.force", "trainer.checkpoint_every",
                         "trainer.device"}
_HOUSEKEEPING_PREFIXES = ("hydra", "logger")


@dataclass
class Ours:
    """Our completed runs of one cell: their values in display units."""

    values: np.ndarray
    runs: int

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(self.values.mean()) if self.n else math.nan

    @property
    def std(self) -> float:
        return float(self.values.std(ddof=1)) if self.n > 1 else math.nan


@dataclass
class Against:
    """The comparison of the runs in a frame with one preset's numbers and claims.

    ``cells`` is long: one row per (metric, loss, noise) cell and source of a number for it (ours
    repeated on each), plus one row with no source (``source_id`` NaN) for each cell of our runs that
    has no number at all.
    """

    protocol: Protocol
    source: str                      # "published", "reference" or "none"
    cells: pd.DataFrame
    claims: pd.DataFrame             # one row per claim
    frame: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)  # the sources compared with, in order


def _runs_protocol(frame: pd.DataFrame) -> pd.Series:
    """Which preset each run belongs to: the ``protocol`` choice its summary records, else its config's
    ``protocol.name`` (unfinished runs), else 'none'."""
    def one(row: pd.Series) -> str:
        for key in ("protocol", "protocol.name"):
            value = row.get(key)
            if _label(value) != "?":
                return str(value)
        return "none"

    return frame.apply(one, axis=1) if len(frame) else pd.Series(dtype=object)


def check_runs(frame: pd.DataFrame, name: str) -> None:
    """Refuse runs of another preset (or of none), naming what would be allowed."""
    found = _runs_protocol(frame)
    others = found[found != name].value_counts()
    if len(others):
        listing = ", ".join(f"'{p}' ({k} run{'s' if k > 1 else ''})" for p, k in others.items())
        ours = sorted(set(others.index) & set(preset_names()))
        hint = f"compare them --against {ours[0]}, or " if ours else ""
        raise ProtocolError(
            f"the runs include runs of preset {listing}, not of '{name}'; {hint}pass only runs made with "
            f"`lossbench reproduce {name}` (or +experiment={name}); presets: {', '.join(preset_names())}"
        )


def _ours(frame: pd.DataFrame, metric: str, loss: str, noise: str) -> Ours:
    mask = (frame["loss"].map(_label) == loss) & (frame["noise"].map(_label) == noise)
    cell = frame[mask]
    done = cell[cell["status"] == "completed"]
    values = pd.to_numeric(done[metric], errors="coerce") if metric in done else pd.Series(dtype=float)
    values = values.dropna().to_numpy(dtype=float) * metric_scale(metric)
    return Ours(values=values, runs=len(cell))


def _within(ours: Ours, published: float) -> bool | None:
    """Whether ``published`` lies between our smallest and largest run (None below two runs)."""
    if ours.n < 2:
        return None
    return bool(ours.values.min() <= published <= ours.values.max())


CELL_COLUMNS = ["metric", "loss", "noise", "ours_mean", "ours_std", "ours_n", "ours_runs", "source_id",
                "source_label", "published_mean", "published_std", "published_n", "mark", "difference",
                "within_spread", "source", "note"]


def _cell_row(frame: pd.DataFrame, metric: str, loss: str, noise: str, cell: Cell | None = None,
              source: Source | None = None) -> dict:
    """Ours in one cell, beside ``cell`` (a number of ``source``) or beside nothing."""
    ours = _ours(frame, metric, loss, noise)
    row = {"metric": metric, "loss": loss, "noise": noise,
           "ours_mean": ours.mean, "ours_std": ours.std, "ours_n": ours.n, "ours_runs": ours.runs}
    if cell is None:
        return {**row, "source_id": None, "source_label": None, "published_mean": math.nan,
                "published_std": math.nan, "published_n": math.nan, "mark": "", "difference": math.nan,
                "within_spread": None, "source": "", "note": ""}
    return {**row, "source_id": source.id, "source_label": source.label,
            "published_mean": cell.mean, "published_std": cell.std, "published_n": cell.n, "mark": cell.mark,
            "difference": ours.mean - cell.mean if ours.n else math.nan,
            "within_spread": _within(ours, cell.mean), "source": cell.source, "note": cell.note}


def _claim_row(frame: pd.DataFrame, claim: Claim) -> dict:
    """Held when the claim holds at every noise it names; undetermined when a cell has no run."""
    direction = metric_direction(claim.metric) or "max"
    sign = -1.0 if direction == "min" else 1.0
    parts, held = [], True
    for noise in claim.noise:
        if claim.better is not None:
            a = _ours(frame, claim.metric, claim.better, noise)
            b = _ours(frame, claim.metric, claim.worse, noise)
            if not (a.n and b.n):
                lacking = claim.better if not a.n else claim.worse
                return _claim_result(claim, "undetermined", f"no runs of {lacking} at {noise}")
            gap = sign * (a.mean - b.mean)
            parts.append(f"{noise}: {gap:+.2f}")
            held &= gap > claim.margin
        else:
            a = _ours(frame, claim.metric, claim.loss, noise)
            if not a.n:
                return _claim_result(claim, "undetermined", f"no runs of {claim.loss} at {noise}")
            parts.append(f"{noise}: {a.mean:.2f}")
            held &= a.mean >= claim.at_least if claim.at_least is not None else a.mean <= claim.at_most
    return _claim_result(claim, "held" if held else "not held", "; ".join(parts))


def _claim_result(claim: Claim, verdict: str, ours: str) -> dict:
    return {"claim": claim.text, "metric": claim.metric, "ours": ours, "verdict": verdict,
            "mark": claim.mark, "source": claim.source, "source_id": claim.source_id or None}


def _deviations(frame: pd.DataFrame) -> list[str]:
    """Overrides of the runs beyond the grid and housekeeping: what makes them differ from the preset."""
    found: dict[str, set[str]] = {}
    for text in frame.get("overrides", pd.Series(dtype=object)).dropna():
        for item in str(text).split():
            key, sep, value = item.partition("=")
            key = key.lstrip("+~")
            if sep and key not in _GRID_OR_HOUSEKEEPING and not key.startswith(_HOUSEKEEPING_PREFIXES):
                found.setdefault(key, set()).add(value)
    return [f"{k}={','.join(sorted(v))}" for k, v in sorted(found.items())]


def _our_cells(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(loss, noise) of every run, losses in the order first met, noises by rate."""
    labels = pd.DataFrame({"loss": frame["loss"].map(_label), "noise": frame["noise"].map(_label),
                           "rate": pd.to_numeric(frame.get("noise_rate"), errors="coerce")
                           if "noise_rate" in frame else math.nan})
    losses = list(dict.fromkeys(labels["loss"]))
    rates = labels.groupby("noise")["rate"].min().fillna(math.inf)
    pairs = labels[["loss", "noise"]].drop_duplicates().itertuples(index=False)
    return sorted(((r.loss, r.noise) for r in pairs), key=lambda p: (losses.index(p[0]), rates[p[1]], p[1]))


def compare(frame: pd.DataFrame, name: str) -> Against:
    """Our runs (one DataFrame row per run, as `lossbench report` builds it) against preset ``name``."""
    protocol = load_protocol(name)
    check_runs(frame, name)
    compared = protocol.compared_sources()
    source = "none" if not compared else REFERENCE if compared[0][0].id == REFERENCE else PUBLISHED
    numbers = {(c.metric, c.loss, c.noise, s.id): (s, c) for s, cells in compared for c in cells}
    keys = list(dict.fromkeys((c.metric, c.loss, c.noise) for _, cells in compared for c in cells))
    ours = _our_cells(frame)
    keys += [k for loss, noise in ours if (k := (protocol.metric, loss, noise)) not in keys]
    rows = []
    for key in keys:
        found = [numbers[(*key, s.id)] for s, _ in compared if (*key, s.id) in numbers]
        rows += [_cell_row(frame, *key, c, s) for s, c in found] or [_cell_row(frame, *key)]
    claims = pd.DataFrame([_claim_row(frame, c) for c in protocol.claims],
                          columns=["claim", "metric", "ours", "verdict", "mark", "source", "source_id"])
    warnings = []
    deviations = _deviations(frame)
    if deviations:
        warnings.append("these runs deviate from the preset in " + ", ".join(deviations)
                        + "; the comparison is not a reproduction")
    numbered = {(c.loss, c.noise) for _, cells in compared for c in cells}
    extra = [f"{loss}/{noise}" for loss, noise in ours if (loss, noise) not in numbered]
    if extra and compared:
        warnings.append(f"{len(extra)} cell(s) of the runs have no {source} number (ours shown alone): "
                        + ", ".join(extra))
    return Against(protocol, source, pd.DataFrame(rows, columns=CELL_COLUMNS), claims, frame, warnings,
                   [s for s, _ in compared])


# ---------------------------------------------------------------------------------------------- rendering

def _num(value, digits: int) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _pm(mean, std, n, digits: int, pm: str, dash: str) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return dash
    text = _num(mean, digits)
    if std is not None and not (isinstance(std, float) and math.isnan(std)):
        text += f" {pm} {_num(std, digits)}"
    if n is not None and not (isinstance(n, float) and math.isnan(n)):
        text += f" ({int(n)})"
    return text


def _columns(result: Against) -> list[tuple[Source, str, str, str]]:
    """Per source compared with: (source, its value's column, the difference's, the spread's)."""
    if len(result.sources) == 1:
        [s] = result.sources
        return [(s, s.label, "difference", "within our spread")]
    return [(s, s.label, f"difference ({s.id})", f"within our spread ({s.id})") for s in result.sources]


def display_cells(result: Against, fmt: str, digits: int = 2) -> pd.DataFrame:
    """The cell table as strings in ``fmt``'s markup: one row per (metric, loss, noise), ours, then per
    source its value, the difference ours minus it, and whether it lies within our spread."""
    m = MARKUP[fmt]
    text = MARKUP["text"]  # cells are composed in plain text, escaped, then given the format's symbols
    columns = _columns(result)
    lines = []
    for (metric, loss, noise), group in result.cells.groupby(["metric", "loss", "noise"], sort=False):
        first = group.iloc[0]
        ours = _pm(first.ours_mean, first.ours_std, first.ours_n, digits, text.pm, text.dash)
        if first.ours_n < first.ours_runs:
            ours += f" [{first.ours_n}/{first.ours_runs} runs completed]"
        line = {"metric": metric, "loss": loss, "noise": noise, "ours": ours}
        by_source = {r.source_id: r for r in group.itertuples() if isinstance(r.source_id, str)}
        for source, value, difference, within in columns:
            r = by_source.get(source.id)
            if r is None:
                line.update({value: text.dash, difference: text.dash, within: text.dash})
                continue
            published = _pm(r.published_mean, r.published_std, r.published_n, digits, text.pm, text.dash)
            diff = _num(r.difference, digits)
            line.update({value: f"{published} {r.mark}".strip(),
                         difference: f"{'+' if r.difference > 0 else ''}{diff}" if diff else text.dash,
                         within: {True: "yes", False: "no", None: text.dash}[r.within_spread]})
        lines.append(line)
    names = ["metric", "loss", "noise", "ours", *(c for _, *cs in columns for c in cs)]
    frame = pd.DataFrame(lines, columns=names)
    if frame["metric"].nunique() <= 1:
        frame = frame.drop(columns="metric")
    frame = frame.map(lambda v: m.escape(v).replace(text.pm, m.pm).replace(text.dash, m.dash))
    if fmt != "latex":  # the LaTeX table escapes its header itself
        frame.columns = [m.escape(c) for c in frame.columns]
    return frame


def display_claims(result: Against, fmt: str) -> pd.DataFrame:
    m = MARKUP[fmt]
    frame = result.claims[["claim", "ours", "verdict", "mark"]].map(m.escape)
    frame["verdict"] = [m.bold(v) if v == "held" else v for v in frame["verdict"]]
    labels = {s.id: s.label for s in result.protocol.sources}
    if result.claims["source_id"].notna().any():
        frame["rests on"] = [m.escape(labels.get(i, "")) if isinstance(i, str) else "" for i in
                             result.claims["source_id"]]
    return frame


def title(result: Against) -> str:
    p = result.protocol
    unit = " (%)" if metric_scale(p.metric) == 100 else ""
    if not result.sources:
        what = "ours alone: no published numbers are known"
    elif result.source == "reference":
        what = "ours against lossbench's reference table"
    elif [s.id for s in result.sources] == ["published"]:
        what = "ours against the published numbers"
    else:
        what = "ours against " + " and ".join(s.label for s in result.sources)
    return f"{p.name}: {p.paper}, {p.dataset}. {p.metric}{unit} ({p.kind}): {what}"


def legend(result: Against) -> str:
    p = result.protocol
    parts = ["ours: mean ± std over our completed runs (n)"]
    for source, _, difference, _ in _columns(result):
        where = f", read in {source.source}" if source.source and source.id != "published" else ""
        name = "published" if source.id == "published" else source.label
        parts.append(f"{difference}: ours minus {name}{where}")
    if result.sources:
        parts.append("within our spread: the published mean lies between our smallest and largest run "
                     "(needs 2 runs)")
    parts.append("marks: " + "; ".join(f"{mark}: {meaning}" for mark, meaning in MARKS.items()))
    if result.source != "published":
        parts.append(p.published_note or "no published numbers are known for this preset")
        if p.reference_note and result.sources:
            parts.append(p.reference_note)
    return ". ".join(parts) + "."


def _md(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, disable_numparse=True)


def to_markdown(result: Against, digits: int = 2) -> str:
    parts = [f"**{title(result)}**", _md(display_cells(result, "md", digits)), legend(result)]
    if len(result.claims):
        parts += ["**Claims**", _md(display_claims(result, "md"))]
    parts += [f"Warning: {escape.markdown(w)}" for w in result.warnings]
    parts.append(f"**Runs.** {escape.markdown(status_line(result.frame))}.")
    return "\n\n".join(parts) + "\n"


def _latex_table(frame: pd.DataFrame, caption: str) -> str:
    styler = frame.style.hide(axis="index").format_index(escape="latex", axis=1)
    caption = caption.replace("%", "\\%").replace("_", "\\_").replace("±", "$\\pm$")
    return styler.to_latex(hrules=True, caption=caption, position_float="centering")


def to_latex(result: Against, digits: int = 2) -> str:
    parts = ["% lossbench report --against", _latex_table(display_cells(result, "latex", digits),
                                                          f"{title(result)}. {legend(result)}")]
    if len(result.claims):
        parts.append(_latex_table(display_claims(result, "latex"), f"{result.protocol.name}: claims"))
    parts += [f"% {escape.latex_comment(w)}" for w in result.warnings]
    parts.append(f"% {escape.latex_comment(status_line(result.frame))}")
    return "\n".join(parts) + "\n"


def to_html(result: Against, digits: int = 2) -> str:
    parts = [f"<p><b>{html.escape(title(result))}</b></p>",
             display_cells(result, "html", digits).to_html(index=False, escape=False, border=0,
                                                           classes="lossbench-against"),
             f"<p>{html.escape(legend(result))}</p>"]
    if len(result.claims):
        parts += ["<p><b>Claims</b></p>", display_claims(result, "html").to_html(
            index=False, escape=False, border=0, classes="lossbench-claims")]
    parts += [f"<p>Warning: {escape.html_text(w)}</p>" for w in result.warnings]
    parts.append(f"<p><b>Runs.</b> {escape.html_text(status_line(result.frame))}.</p>")
    return "\n".join(parts) + "\n"


def to_csv(result: Against) -> str:
    """Cells then claims, unrounded: one line each, with a ``kind`` column (cell or claim)."""
    cells = result.cells.assign(kind="cell", preset=result.protocol.name, compared_with=result.source)
    claims = result.claims.assign(kind="claim", preset=result.protocol.name)
    frame = pd.concat([cells, claims], ignore_index=True)
    for column in frame.columns:  # names from run files: no control, bidi or line-break characters
        if not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].astype(object).map(
                lambda v: escape.printable(v) if isinstance(v, str) else v)
    return csv_text(frame)


def render(result: Against, fmt: str, digits: int | None = None) -> str:
    digits = 2 if digits is None else digits
    if fmt == "md":
        return to_markdown(result, digits)
    if fmt == "latex":
        return to_latex(result, digits)
    if fmt == "html":
        return to_html(result, digits)
    if fmt == "csv":
        return to_csv(result)
    raise ValueError(f"unknown format '{fmt}'")


def print_rich(result: Against, digits: int | None = None, console=None) -> None:
    from rich.table import Table

    from lossbench.core.console import table_console

    console = console or table_console()
    for frame, heading, caption in (
        (display_cells(result, "rich", 2 if digits is None else digits), title(result), legend(result)),
        (display_claims(result, "rich"), "claims", None),
    ):
        if frame.empty:
            continue
        # the title and legend as lines of their own: as wide as the console, not as the table
        console.print(f"[bold]{escape.rich_text(heading)}[/bold]", highlight=False)
        grid = Table()
        for name in frame.columns:
            left = name in ("metric", "claim", "loss", "noise", "rests on")
            grid.add_column(str(name), justify="left" if left else "right")
        for row in frame.itertuples(index=False):
            grid.add_row(*map(str, row))
        console.print(grid)
        if caption:
            console.print(escape.rich_text(caption), highlight=False)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape.rich_text(warning)}", highlight=False)
    console.print(f"[bold]Runs[/bold]: {escape.rich_text(status_line(result.frame))}", highlight=False)

"""`lossbench report DIR --against NAME`: our cells beside a preset's published numbers, and its claims.

For every published cell (metric, loss, noise) of the preset's data file: ours (mean +- std over the
completed runs, n), the published value (mean +- std, n, confidence mark), the difference ours minus
published, and whether the published mean lies within our seeds' spread (between the smallest and the
largest of our runs; needs two runs). Where no number is published, lossbench's own reference table
stands in, labelled as such. Each claim of the data file is then checked on our means: held, not held,
or undetermined (a cell without runs).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lossbench.protocols.catalogue import Cell, Claim, Protocol, ProtocolError, load_protocol, preset_names
from lossbench.report import escape
from lossbench.report.render import MARKUP, status_line
from lossbench.report.tables import _label, metric_direction, metric_scale

# Overrides that choose a cell of the grid or do not change what a run computes.
_GRID_OR_HOUSEKEEPING = {"loss", "noise", "seed", "experiment", "data_dir", "dataset.data_dir",
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
    """The comparison of the runs in a frame with one preset's numbers and claims."""

    protocol: Protocol
    source: str                      # "published" or "reference"
    cells: pd.DataFrame              # one row per compared cell
    claims: pd.DataFrame             # one row per claim
    frame: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


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


def _cell_row(frame: pd.DataFrame, cell: Cell) -> dict:
    ours = _ours(frame, cell.metric, cell.loss, cell.noise)
    return {
        "metric": cell.metric, "loss": cell.loss, "noise": cell.noise,
        "ours_mean": ours.mean, "ours_std": ours.std, "ours_n": ours.n, "ours_runs": ours.runs,
        "published_mean": cell.mean, "published_std": cell.std, "published_n": cell.n, "mark": cell.mark,
        "difference": ours.mean - cell.mean if ours.n else math.nan,
        "within_spread": _within(ours, cell.mean), "source": cell.source, "note": cell.note,
    }


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
            "mark": claim.mark, "source": claim.source}


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


def compare(frame: pd.DataFrame, name: str) -> Against:
    """Our runs (one DataFrame row per run, as `lossbench report` builds it) against preset ``name``."""
    protocol = load_protocol(name)
    check_runs(frame, name)
    source, cells = protocol.compared
    rows = [_cell_row(frame, c) for c in cells]
    columns = ["metric", "loss", "noise", "ours_mean", "ours_std", "ours_n", "ours_runs", "published_mean",
               "published_std", "published_n", "mark", "difference", "within_spread", "source", "note"]
    claims = pd.DataFrame([_claim_row(frame, c) for c in protocol.claims],
                          columns=["claim", "metric", "ours", "verdict", "mark", "source"])
    warnings = []
    deviations = _deviations(frame)
    if deviations:
        warnings.append("these runs deviate from the preset in " + ", ".join(deviations)
                        + "; the comparison is not a reproduction")
    compared = {(c.loss, c.noise) for c in cells} | {(x, n) for cl in protocol.claims for x in cl.losses
                                                     for n in cl.noise}
    present = {(_label(r.loss), _label(r.noise)) for r in frame[["loss", "noise"]].itertuples()}
    extra = sorted(present - compared)
    if extra:
        warnings.append(f"{len(extra)} cell(s) of the runs have no {source} number: "
                        + ", ".join(f"{loss}/{noise}" for loss, noise in extra))
    return Against(protocol, source, pd.DataFrame(rows, columns=columns), claims, frame, warnings)


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


def display_cells(result: Against, fmt: str, digits: int = 2) -> pd.DataFrame:
    """The cell table as strings in ``fmt``'s markup."""
    m = MARKUP[fmt]
    label = "published" if result.source == "published" else "reference (lossbench)"
    lines = []
    text = MARKUP["text"]  # cells are composed in plain text, escaped, then given the format's symbols
    for r in result.cells.itertuples():
        ours = _pm(r.ours_mean, r.ours_std, r.ours_n, digits, text.pm, text.dash)
        if r.ours_n < r.ours_runs:
            ours += f" [{r.ours_n}/{r.ours_runs} runs completed]"
        within = {True: "yes", False: "no", None: text.dash}[r.within_spread]
        diff = _num(r.difference, digits)
        published = _pm(r.published_mean, r.published_std, r.published_n, digits, text.pm, text.dash)
        lines.append({"metric": r.metric, "loss": r.loss, "noise": r.noise, "ours": ours,
                      label: f"{published} {r.mark}".strip(),
                      "difference": f"{'+' if r.difference > 0 else ''}{diff}" if diff else text.dash,
                      "within our spread": within})
    frame = pd.DataFrame(lines, columns=["metric", "loss", "noise", "ours", label, "difference",
                                         "within our spread"])
    if frame["metric"].nunique() <= 1:
        frame = frame.drop(columns="metric")
    return frame.map(lambda v: m.escape(v).replace(text.pm, m.pm).replace(text.dash, m.dash))


def display_claims(result: Against, fmt: str) -> pd.DataFrame:
    m = MARKUP[fmt]
    frame = result.claims[["claim", "ours", "verdict", "mark"]].map(m.escape)
    frame["verdict"] = [m.bold(v) if v == "held" else v for v in frame["verdict"]]
    return frame


def title(result: Against) -> str:
    p = result.protocol
    unit = " (%)" if metric_scale(p.metric) == 100 else ""
    what = "published numbers" if result.source == "published" else "lossbench's reference table"
    return (f"{p.name}: {p.paper}, {p.dataset}. {p.metric}{unit} ({p.kind}), ours against the {what}")


def legend(result: Against) -> str:
    p = result.protocol
    parts = ["ours: mean ± std over our completed runs (n)",
             "difference: ours minus published",
             "within our spread: the published mean lies between our smallest and largest run (needs 2 runs)",
             "marks: [code] official repository, [README] its README, [2nd] quoted by a third party, "
             "[lossbench] measured by lossbench"]
    if result.source == "reference":
        parts.append(p.published_note or "no published numbers are known for this preset")
        if p.reference_note:
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
    return pd.concat([cells, claims], ignore_index=True).to_csv(index=False)


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
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=160)
    for frame, heading, caption in (
        (display_cells(result, "rich", 2 if digits is None else digits), title(result), legend(result)),
        (display_claims(result, "rich"), "claims", None),
    ):
        if frame.empty:
            continue
        grid = Table(title=escape.rich_text(heading), caption=caption and escape.rich_text(caption),
                     caption_justify="left")
        for name in frame.columns:
            grid.add_column(str(name), justify="left" if name in ("claim", "loss", "noise") else "right")
        for row in frame.itertuples(index=False):
            grid.add_row(*map(str, row))
        console.print(grid)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape.rich_text(warning)}", highlight=False)
    console.print(f"[bold]Runs[/bold]: {escape.rich_text(status_line(result.frame))}", highlight=False)

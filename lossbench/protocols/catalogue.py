"""The catalogue of published protocols: preset names, their composed configs and grids, and the
published numbers and claims shipped as one small YAML file per preset (lossbench/protocols/data/).

A data file holds:

- ``preset``, ``paper``, ``dataset``, ``source`` (where the protocol's settings were read);
- ``metric``: the summary key the paper's number corresponds to (``test_acc``: last epoch;
  ``best_test_acc``: best test epoch; ``test_acc_at_best_val_noisy``: validation-selected) and
  ``kind``, the same in words;
- ``sources`` (optional): the published sources of the numbers, when there are several (the paper's
  figure and a reproduction's table, say), by id: ``{id: {label, mark, source, note?}}``; ``label``
  names the source's column in a report, ``mark`` and ``source`` (where it was read) are the default
  of its cells. Without ``sources`` the file has one source, "published", and each cell its own mark;
- ``published``: cells ``{loss, noise, mean, std, n, mark, source, metric?, note?, source_id?}``, in
  the unit a report shows (percent for accuracies and calibration errors), or ``[]`` with
  ``published_note`` saying why none is known. ``source_id`` names the cell's source (needed when
  ``sources`` holds more than one); one (metric, loss, noise) cell may have one number per source;
- ``reference``: lossbench's own measured cells (mark ``[lossbench]``), used where nothing is published,
  so that a later change that moves them shows up;
- ``claims``: the paper's qualitative statements, ``{text, better, worse, noise, margin}`` (better
  beats worse by more than ``margin`` at each listed noise) or ``{text, loss, noise, at_least |
  at_most}``, each with its ``mark`` and ``source``, or a ``source_id`` whose mark and source it takes.

For example (two sources for one cell)::

    sources:
      paper: {label: "Menon et al. 2020 (bar chart)", mark: "[figure]", source: "dmizr/phuber docs/mnist.png"}
      reproduction: {label: "[Re] Mizrahi et al. 2021", mark: "[README]", source: "dmizr/phuber README"}
    published:
      - {loss: ce, noise: sym60, mean: 91.1, source_id: paper}
      - {loss: ce, noise: sym60, mean: 98.0, std: 0.1, source_id: reproduction}

Marks (as in PROTOCOLS.md): see MARKS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import yaml

# Where a number was read, as PROTOCOLS.md marks it.
MARKS = {
    "[code]": "read in the official repository",
    "[README]": "read in the official repository's README",
    "[2nd]": "quoted by a third party",
    "[figure]": "read off a published figure",
    "[lossbench]": "measured by lossbench itself",
}
PUBLISHED = "published"  # the id of a data file's one source when it declares none
REFERENCE = "reference"  # the id of lossbench's own reference cells
KINDS = {"test_acc": "last epoch", "best_test_acc": "best test epoch",
         "test_acc_at_best_val_noisy": "validation-selected (noisy validation labels)",
         "test_acc_at_best_val_clean": "validation-selected (clean validation labels)"}
GRID_KEYS = ("loss", "noise", "seed")  # every preset's grid sweeps these
# a preset's grid may sweep these too (ldr_tabular: two datasets, the folds of a cross-validation)
OPTIONAL_GRID_KEYS = ("dataset", "dataset.fold")
# the order a grid's keys are listed and multiplied out in (a run's directory name follows its pattern)
GRID_ORDER = ("dataset", "loss", "noise", "dataset.fold", "seed")


class ProtocolError(ValueError):
    """A preset name, grid subset or data file that does not fit; the message is one line."""


@dataclass(frozen=True)
class Source:
    """Where a set of published numbers comes from: ``id`` (as cells name it), ``label`` (the report's
    column), the default ``mark`` and ``source`` (where it was read) of its cells."""

    id: str
    label: str
    mark: str = ""
    source: str = ""
    note: str = ""


@dataclass(frozen=True)
class Cell:
    """One published (or reference) number: ``metric`` of ``loss`` under ``noise``, in display units."""

    loss: str
    noise: str
    mean: float
    metric: str
    std: float | None = None
    n: int | None = None
    mark: str = ""
    source: str = ""
    note: str = ""
    source_id: str = ""


@dataclass(frozen=True)
class Claim:
    """A qualitative claim: ``better`` beats ``worse`` by more than ``margin`` at every noise in
    ``noise`` (on ``metric``, in display units, following the metric's direction), or ``loss``'s value
    is at least ``at_least`` / at most ``at_most`` there."""

    text: str
    metric: str
    noise: tuple[str, ...]
    better: str | None = None
    worse: str | None = None
    margin: float = 0.0
    loss: str | None = None
    at_least: float | None = None
    at_most: float | None = None
    mark: str = ""
    source: str = ""
    source_id: str = ""

    @property
    def losses(self) -> tuple[str, ...]:
        return tuple(x for x in (self.better, self.worse, self.loss) if x)


@dataclass(frozen=True)
class Protocol:
    """A preset's published numbers and claims (one data file)."""

    name: str
    paper: str
    dataset: str
    metric: str
    kind: str
    source: str
    published: tuple[Cell, ...] = ()
    reference: tuple[Cell, ...] = ()
    claims: tuple[Claim, ...] = ()
    published_note: str = ""
    reference_note: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    sources: tuple[Source, ...] = ()

    @property
    def compared(self) -> tuple[str, tuple[Cell, ...]]:
        """("published", cells) when the paper's numbers are known, else ("reference", lossbench's own)."""
        return ("published", self.published) if self.published else ("reference", self.reference)

    def compared_sources(self) -> list[tuple[Source, tuple[Cell, ...]]]:
        """Each source a report compares with and its cells, in the data file's order: the published
        sources that have cells, else lossbench's reference (when it has cells); [] when neither."""
        if self.published:
            return [(s, cells) for s in self.sources
                    if (cells := tuple(c for c in self.published if c.source_id == s.id))]
        if self.reference:
            return [(Source(REFERENCE, "reference (lossbench)", "[lossbench]"), self.reference)]
        return []


def _data_dir():
    return resources.files("lossbench.protocols").joinpath("data")


def _experiment_dir():
    return resources.files("lossbench.conf").joinpath("experiment")


@cache
def preset_names() -> tuple[str, ...]:
    """The presets of conf/experiment/ that select a published protocol (those with a data file)."""
    return tuple(sorted(p.name[:-5] for p in _data_dir().iterdir() if p.name.endswith(".yaml")))


def check_name(name: str) -> str:
    if name not in preset_names():
        raise ProtocolError(f"unknown preset '{name}'; known: {', '.join(preset_names())}")
    return name


def _source_of(raw: dict, sources: dict[str, Source] | None, what: str, where: str) -> Source | None:
    """The declared source a cell or claim names by ``source_id`` (the only one when it names none)."""
    if not sources:
        return None
    wanted = raw.get("source_id")
    if wanted is None and len(sources) == 1:
        return next(iter(sources.values()))
    if wanted not in sources:
        named = "no source_id" if wanted is None else f"source_id '{wanted}'"
        raise ProtocolError(f"{where}: {named} of {what}; declared: {', '.join(sources)}")
    return sources[wanted]


def _cell(raw: dict, metric: str, where: str, sources: dict[str, Source] | None = None,
          default_id: str = PUBLISHED) -> Cell:
    if not isinstance(raw, dict):
        raise ProtocolError(f"{where}: a cell is a mapping {{loss, noise, mean, ...}}, not {raw!r}")
    source = _source_of(raw, sources, f"{raw.get('loss')}/{raw.get('noise')}", where)
    try:
        cell = Cell(loss=str(raw["loss"]), noise=str(raw["noise"]), mean=float(raw["mean"]),
                    metric=str(raw.get("metric", metric)),
                    std=None if raw.get("std") is None else float(raw["std"]),
                    n=None if raw.get("n") is None else int(raw["n"]),
                    mark=str(raw.get("mark", source.mark if source else "")),
                    source=str(raw.get("source", source.source if source else "")),
                    note=str(raw.get("note", "")), source_id=source.id if source else default_id)
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"{where}: a cell needs loss, noise and a numeric mean ({exc})") from exc
    if cell.mark not in MARKS:
        raise ProtocolError(
            f"{where}: mark '{cell.mark}' of {cell.loss}/{cell.noise}; known: {', '.join(MARKS)}")
    return cell


def _sources(raw: object, where: str, source: str) -> dict[str, Source]:
    """The declared sources by id; without any, the one source "published" (read where ``source`` says)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise ProtocolError(f"{where}: sources maps ids to {{label, mark, source}}; got {raw!r}")
    found = {}
    for key, entry in raw.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("label"), str) \
                or entry.get("mark") not in MARKS:
            raise ProtocolError(f"{where}: source '{key}' needs a label and a mark in {', '.join(MARKS)}; "
                                f"got {entry!r}")
        found[str(key)] = Source(str(key), entry["label"], entry["mark"], str(entry.get("source", source)),
                                 str(entry.get("note", "")))
    return found


def _claim(raw: dict, metric: str, where: str, sources: dict[str, Source] | None = None) -> Claim:
    noise = raw.get("noise")
    noises = tuple(str(n) for n in (noise if isinstance(noise, list) else [noise]) if n is not None)
    source = _source_of(raw, sources, f"claim '{raw.get('text')}'", where) if "source_id" in raw else None
    claim = Claim(
        text=str(raw.get("text", "")), metric=str(raw.get("metric", metric)), noise=noises,
        better=raw.get("better"), worse=raw.get("worse"), margin=float(raw.get("margin", 0.0)),
        loss=raw.get("loss"), at_least=raw.get("at_least"), at_most=raw.get("at_most"),
        mark=str(raw.get("mark", source.mark if source else "")),
        source=str(raw.get("source", source.source if source else "")),
        source_id=source.id if source else "",
    )
    pair = claim.better is not None and claim.worse is not None
    bound = claim.loss is not None and (claim.at_least is not None) != (claim.at_most is not None)
    if not claim.text or not noises or pair == bound or claim.mark not in MARKS:
        raise ProtocolError(
            f"{where}: a claim needs text, noise, a mark in {', '.join(MARKS)}, and either better + worse "
            f"(+ margin) or loss + one of at_least / at_most; got {raw}")
    return claim


@cache
def load_protocol(name: str) -> Protocol:
    """The data file of preset ``name``."""
    check_name(name)
    where = f"lossbench/protocols/data/{name}.yaml"
    return parse_protocol(yaml.safe_load(_data_dir().joinpath(f"{name}.yaml").read_text()), name, where)


def parse_protocol(raw: dict, name: str, where: str = "the data file") -> Protocol:
    """A data file's content (the format in this module's docstring) as a Protocol; a ProtocolError
    (one line, naming ``where``) for anything that does not fit."""
    if not isinstance(raw, dict):
        raise ProtocolError(f"{where}: a data file is a mapping (preset, paper, ...), not {raw!r:.40}")
    metric = raw.get("metric")
    if raw.get("preset") != name or metric not in KINDS:
        raise ProtocolError(f"{where}: preset must be '{name}' and metric one of {', '.join(KINDS)}")
    sources = _sources(raw.get("sources"), where, str(raw.get("source", "")))
    published = tuple(_cell(c, metric, where, sources) for c in raw.get("published") or [])
    seen = set()
    for c in published:
        if (c.metric, c.loss, c.noise, c.source_id) in seen:
            raise ProtocolError(f"{where}: two numbers for {c.metric} of {c.loss}/{c.noise} from source "
                                f"'{c.source_id}'; one cell has at most one number per source")
        seen.add((c.metric, c.loss, c.noise, c.source_id))
    return Protocol(
        name=name, paper=str(raw["paper"]), dataset=str(raw["dataset"]), metric=metric,
        kind=str(raw.get("kind", KINDS[metric])), source=str(raw.get("source", "")),
        published=published,
        reference=tuple(_cell(c, metric, where, default_id=REFERENCE) for c in raw.get("reference") or []),
        claims=tuple(_claim(c, metric, where, sources) for c in raw.get("claims") or []),
        sources=tuple(sources.values()) or (Source(PUBLISHED, PUBLISHED, source=str(raw.get("source", ""))),),
        published_note=str(raw.get("published_note", "")),
        reference_note=str(raw.get("reference_note", "")),
        notes=tuple(str(n) for n in raw.get("notes") or []),
    )


def compose_preset(name: str, overrides: Sequence[str] = ()):
    """The composed config of ``+experiment=NAME`` (with its ``hydra`` node) and ``overrides``."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    check_name(name)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="lossbench.conf", version_base="1.3"):
            return compose(config_name="config", overrides=[f"+experiment={name}", *overrides],
                           return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def preset_grid(cfg) -> dict[str, list[str]]:
    """The preset's grid (hydra.sweeper.params of the composed config): loss, noise and seed lists, and
    the dataset and fold lists of a preset that sweeps them (in GRID_ORDER)."""
    params = cfg.hydra.sweeper.get("params") or {}
    grid = {key: [v.strip() for v in str(params[key]).split(",") if v.strip()] for key in GRID_ORDER
            if key in params}
    missing = [k for k in GRID_KEYS if k not in grid]
    if missing:
        raise ProtocolError(f"the preset's hydra.sweeper.params lacks {', '.join(missing)}")
    return grid

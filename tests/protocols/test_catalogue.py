"""The published numbers shipped as data: every file loads, names only what its preset runs, keeps marks."""

from __future__ import annotations

import re
from importlib import resources

import pytest
import yaml

from lossbench.conf import CONF_DIR
from lossbench.protocols import ProtocolError, compose_preset, load_protocol, preset_grid, preset_names
from lossbench.protocols.catalogue import MARKS, _claim, parse_protocol
from lossbench.report.tables import metric_direction


def _experiments_with_a_protocol() -> set[str]:
    found = set()
    for path in (CONF_DIR / "experiment").glob("*.yaml"):
        defaults = (yaml.safe_load(path.read_text()) or {}).get("defaults", [])
        if any(isinstance(d, dict) and "override /protocol" in d for d in defaults):
            found.add(path.stem)
    return found


def test_every_protocol_preset_has_a_data_file_and_back():
    assert _experiments_with_a_protocol() == set(preset_names())
    shipped = {p.name[:-5] for p in resources.files("lossbench.protocols").joinpath("data").iterdir()}
    assert shipped == set(preset_names())


@pytest.mark.parametrize("name", preset_names())
def test_data_file_names_only_cells_of_the_preset(name):
    protocol = load_protocol(name)
    grid = preset_grid(compose_preset(name))
    source, cells = protocol.compared
    for cell in cells:
        assert cell.loss in grid["loss"] and cell.noise in grid["noise"], (cell.loss, cell.noise)
        assert cell.mark in MARKS and cell.source
        assert metric_direction(cell.metric) is not None or cell.metric.startswith("temperature")
    for claim in protocol.claims:
        assert set(claim.losses) <= set(grid["loss"]) and set(claim.noise) <= set(grid["noise"])
        assert claim.mark in MARKS and claim.source
    if source == "reference":
        assert protocol.published_note, "a preset without published numbers says why"
        assert all(c.mark == "[lossbench]" for c in cells)
    else:
        assert all(c.mark != "[lossbench]" for c in cells)


def test_claims_of_the_data_files_hold_on_the_published_numbers():
    """A claim listed beside published cells must hold on those cells themselves."""
    import pandas as pd

    from lossbench.report.against import _claim_row

    for name in preset_names():
        protocol = load_protocol(name)
        if not protocol.published:
            continue
        for claim in protocol.claims:  # on the numbers of the source it rests on, else on every one
            cells = [c for c in protocol.published if claim.source_id in ("", c.source_id)]
            rows = [{"loss": c.loss, "noise": c.noise, "status": "completed", c.metric: c.mean / 100 if
                     c.metric != "temperature_noisy" else c.mean, "protocol": name} for c in cells]
            verdict = _claim_row(pd.DataFrame(rows), claim)["verdict"]
            assert verdict in ("held", "undetermined"), (name, claim.text)
            published = {(c.loss, c.noise) for c in cells}
            if all((loss, n) in published for loss in claim.losses for n in claim.noise):
                assert verdict == "held", (name, claim.text)


def test_a_malformed_claim_is_refused_in_one_line():
    with pytest.raises(ProtocolError, match="a claim needs text, noise") as exc:
        _claim({"text": "x beats y", "better": "x", "noise": "sym80", "mark": "[2nd]"}, "test_acc", "f.yaml")
    assert "\n" not in str(exc.value)


def test_apl_mnist_says_that_nothing_is_published():
    protocol = load_protocol("apl_mnist")
    assert protocol.published == () and "no published MNIST numbers" in protocol.published_note


BASE = {"preset": "x", "paper": "P", "dataset": "D", "metric": "test_acc", "source": "somewhere"}
TWO = {"paper": {"label": "P (figure 2)", "mark": "[figure]", "source": "fig. 2"},
       "redo": {"label": "a reproduction", "mark": "[README]", "source": "its README"}}


def test_a_file_without_sources_has_one_source_named_published():
    protocol = parse_protocol({**BASE, "published": [
        {"loss": "ce", "noise": "sym20", "mean": 90.0, "mark": "[code]", "source": "table 1"}]}, "x")
    [(source, cells)] = protocol.compared_sources()
    assert (source.id, source.label) == ("published", "published")
    assert cells[0].source_id == "published" and cells[0].mark == "[code]" and cells[0].source == "table 1"


def test_named_sources_give_their_cells_a_mark_and_a_source():
    protocol = parse_protocol({**BASE, "sources": TWO, "published": [
        {"loss": "ce", "noise": "sym20", "mean": 90.1, "source_id": "paper"},
        {"loss": "ce", "noise": "sym20", "mean": 91.0, "std": 0.2, "source_id": "redo"},
        {"loss": "gce", "noise": "sym20", "mean": 92.0, "source_id": "redo", "mark": "[2nd]"}],
        "claims": [{"text": "t", "better": "gce", "worse": "ce", "noise": "sym20", "source_id": "redo"}],
    }, "x")
    [(paper, p_cells), (redo, r_cells)] = protocol.compared_sources()
    assert paper.label == "P (figure 2)" and [c.mean for c in p_cells] == [90.1]
    assert p_cells[0].mark == "[figure]" and p_cells[0].source == "fig. 2"
    # a cell's own mark wins over its source's
    assert [(c.mean, c.mark) for c in r_cells] == [(91.0, "[README]"), (92.0, "[2nd]")]
    assert protocol.claims[0].mark == "[README]" and protocol.claims[0].source == "its README"
    assert "[figure]" in MARKS and MARKS["[figure]"] == "read off a published figure"


@pytest.mark.parametrize("change, message", [
    ({"sources": {"paper": {"label": "P", "mark": "[chart]"}}}, "source 'paper' needs a label and a mark in"),
    ({"published": [{"loss": "ce", "noise": "sym20", "mean": 1.0}]}, "no source_id of ce/sym20; declared"),
    ({"published": [{"loss": "ce", "noise": "sym20", "mean": 1.0, "source_id": "paper"},
                    {"loss": "ce", "noise": "sym20", "mean": 2.0, "source_id": "paper"}]},
     "two numbers for test_acc of ce/sym20 from source 'paper'"),
    ({"claims": [{"text": "t", "loss": "ce", "noise": "sym20", "at_least": 1, "source_id": "nope"}]},
     "source_id 'nope' of claim 't'; declared: paper, redo"),
])
def test_bad_sources_are_refused_in_one_line(change, message):
    with pytest.raises(ProtocolError, match=re.escape(message)) as exc:
        parse_protocol({**BASE, "sources": TWO, **change}, "x", "x.yaml")
    assert "\n" not in str(exc.value) and str(exc.value).startswith("x.yaml: ")

"""The published numbers shipped as data: every file loads, names only what its preset runs, keeps marks."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from lossbench.conf import CONF_DIR
from lossbench.protocols import ProtocolError, compose_preset, load_protocol, preset_grid, preset_names
from lossbench.protocols.catalogue import MARKS, _claim
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
        rows = [{"loss": c.loss, "noise": c.noise, "status": "completed", c.metric: c.mean / 100 if
                 c.metric != "temperature_noisy" else c.mean, "protocol": name} for c in protocol.published]
        frame = pd.DataFrame(rows)
        for claim in protocol.claims:
            verdict = _claim_row(frame, claim)["verdict"]
            assert verdict in ("held", "undetermined"), (name, claim.text)
            if all((loss, n) in {(c.loss, c.noise) for c in protocol.published}
                   for loss in claim.losses for n in claim.noise):
                assert verdict == "held", (name, claim.text)


def test_a_malformed_claim_is_refused_in_one_line():
    with pytest.raises(ProtocolError, match="a claim needs text, noise") as exc:
        _claim({"text": "x beats y", "better": "x", "noise": "sym80", "mark": "[2nd]"}, "test_acc", "f.yaml")
    assert "\n" not in str(exc.value)


def test_apl_mnist_says_that_nothing_is_published():
    protocol = load_protocol("apl_mnist")
    assert protocol.published == () and "no published MNIST numbers" in protocol.published_note

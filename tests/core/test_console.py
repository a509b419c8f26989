"""Off a terminal (piped, redirected) every command's table is printed whole: no cell is cut, no line
is wrapped at 80 columns (`losses`, `list`, `reproduce --list`; `report`: tests/report/test_output.py)."""

from __future__ import annotations

import pytest

from lossbench.cli import main as lossbench_main


@pytest.fixture(autouse=True)
def narrow(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # what rich assumes off a terminal


def test_losses_list_and_presets_print_whole_lines(capsys):
    from lossbench.losses import LOSSES
    from lossbench.protocols import load_protocol, preset_names

    lossbench_main(["losses"])
    out = capsys.readouterr().out
    assert "…" not in out
    for _, cls in LOSSES.items():
        assert cls.paper in out  # one line each, not folded at 80 columns
    lossbench_main(["list", "noise"])
    out = capsys.readouterr().out
    assert "…" not in out and max(map(len, out.splitlines())) > 80
    lossbench_main(["reproduce", "--list"])
    out = capsys.readouterr().out
    assert "…" not in out
    for name in preset_names():
        assert load_protocol(name).paper in out

"""The command's small things: --version, whole descriptions in `list`, presets named in `run --help`."""

from __future__ import annotations

import pytest

import lossbench
from lossbench.cli import describe, main


def test_version(capsys):
    main(["--version"])
    assert capsys.readouterr().out.strip() == f"lossbench {lossbench.__version__}"


def test_describe_takes_the_whole_first_paragraph():
    text = ("# @package _global_\n# First line of a sentence that goes on\n# and ends here.\n"
            "#   lossbench run +experiment=x\n# Later notes.\nkey: 1\n")
    assert describe(text) == "First line of a sentence that goes on and ends here."
    assert describe("key: 1\n") == ""


def test_list_prints_descriptions_whole_when_piped(capsys):
    main(["list", "noise", "experiment"])
    out = " ".join(capsys.readouterr().out.split())  # the table may wrap a cell; words stay whole
    for cell in ("│", "┃"):
        out = out.replace(cell, " ")
    out = " ".join(out.split())
    # the last words of multi-line comment paragraphs, which a first-line cut lost
    assert "github.com/UCSC-REAL/cifar-10-100n, data/." in out
    assert "> 97% clean test accuracy with clean labels." in out
    assert "+experiment=NAME" in out
    assert "…" not in out


def test_run_help_names_presets(capsys, monkeypatch):
    from hydra.core.global_hydra import GlobalHydra

    monkeypatch.setattr("sys.argv", ["lossbench"])  # the run command rewrites sys.argv for Hydra
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["run", "--help"])
    finally:
        GlobalHydra.instance().clear()
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "+experiment=NAME" in out and "experiment: mnist_quick" in out
    assert "lossbench evaluate RUN_DIR" in out


def test_usage_lists_every_command(capsys):
    main([])
    out = capsys.readouterr().out
    for command in ("run", "evaluate", "report", "losses", "list", "--version", "+experiment=NAME"):
        assert command in out

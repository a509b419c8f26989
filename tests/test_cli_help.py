"""The command's small things: --version, whole descriptions in `list`, presets named in `run --help`."""

from __future__ import annotations

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
        main(["run", "--help"])  # returns, or exits with status 0
    except SystemExit as exc:
        assert exc.code in (0, None)
    finally:
        GlobalHydra.instance().clear()
    out = capsys.readouterr().out
    assert "+experiment=NAME" in out and "experiment: mnist_quick" in out
    assert "lossbench evaluate RUN_DIR" in out


def test_usage_lists_every_command(capsys):
    main([])
    out = capsys.readouterr().out
    for command in ("run", "evaluate", "report", "losses", "list", "--version", "+experiment=NAME"):
        assert command in out


INTERNAL = ("dataset_loss", "protocol_loss", "protocol_noise")


def _run_help(capsys, monkeypatch, *args) -> str:
    from hydra.core.global_hydra import GlobalHydra

    monkeypatch.setattr("sys.argv", ["lossbench"])
    try:
        main(["run", *args, "--help"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    finally:
        GlobalHydra.instance().clear()
    return capsys.readouterr().out


def test_run_help_hides_the_internal_groups(capsys, monkeypatch):
    out = _run_help(capsys, monkeypatch)
    for group in ("dataset:", "loss:", "noise:", "model:", "trainer:", "experiment:"):
        assert f"\n{group} " in out, group
    for group in INTERNAL:
        assert f"{group}:" not in out and "cifar100_nce_rce" not in out
    assert "== Config ==" in out and "subset: null" in out  # the composed config, as Hydra shows it
    focal = _run_help(capsys, monkeypatch, "loss=focal")
    assert "gamma:" in focal  # the config composed with the command's overrides


def test_list_hides_the_internal_groups_and_says_each_paragraph_once(capsys):
    main(["list"])
    out = capsys.readouterr().out
    for group in INTERNAL:
        assert f" {group} " not in out
    assert " noise " in out and " loss " in out
    main(["list", "noise"])
    flat = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert flat.count("Patrini et al. 2017") == 1  # asym's paragraph, not once more per rate
    assert "asym10, asym20, asym30, asym40" in flat and "asym at noise.rate 0.1, 0.2, 0.3, 0.4" in flat
    main(["list", "dataset_loss"])  # still listed when asked for by name
    assert "cifar100_nce_rce" in capsys.readouterr().out

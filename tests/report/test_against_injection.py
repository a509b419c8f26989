"""`report --against` escapes what came from run files on every output path, as the plain report does:
the same hostile names (tests/support/hostile.py) in Markdown, LaTeX, HTML, CSV and the terminal."""

from __future__ import annotations

import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hostile import LOSSES, NOISES, OVERRIDES, TEX_ATTACK
from rich.console import Console

from lossbench.report import against
from lossbench.report.cli import main as report_main
from lossbench.report.collect import local_records, runs_frame

# LaTeX commands the --against tables write themselves (pandas' Styler and our markup).
OURS = {"begin", "end", "centering", "caption", "toprule", "midrule", "bottomrule", "textbf", "pm", "dagger",
        "textbackslash", "textasciitilde", "textasciicircum", "textless", "textgreater", "textbar",
        "multicolumn", "_", "%", "&", "#", "$", "{", "}"}


def _run(root: Path, name: str, loss: str, noise: str, seed: int, overrides: list[str], acc: float) -> None:
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    config = {"seed": seed, "loss": {"_target_": f"x.{loss}"}, "protocol": {"name": "anl_cifar10"}}
    (run / ".hydra" / "config.yaml").write_text(json.dumps(config))
    choices = {"dataset": "cifar10", "model": "cnn8", "loss": loss, "noise": noise, "reweight": "none",
               "protocol": "anl_cifar10"}
    (run / ".hydra" / "hydra.yaml").write_text(json.dumps({"hydra": {"runtime": {"choices": choices}}}))
    summary = {"status": "completed", **choices, "seed": seed, "test_acc": acc, "config": config,
               "overrides": ["+experiment=anl_cifar10", f"loss={loss}", f"noise={noise}", *overrides]}
    (run / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def hostile_runs(tmp_path) -> Path:
    root = tmp_path / "sweep"
    for seed in range(2):
        _run(root, f"ce-sym80-s{seed}", "ce", "sym80", seed, [], 0.2 + seed / 100)
    i = 0
    for loss in LOSSES:
        for noise in NOISES:
            name = f"{i}{TEX_ATTACK}" if i % 5 == 0 else str(i)
            _run(root, name.replace("/", "_"), loss, noise, 0, [OVERRIDES[i % len(OVERRIDES)]], 0.5)
            i += 1
    return root


def _write(root: Path, tmp_path: Path, suffix: str) -> str:
    out = tmp_path / "out" / f"against{suffix}"
    report_main([str(root), "--against", "anl_cifar10", "--out", str(out)])
    return out.read_text()


def test_the_hostile_names_reach_the_warnings(hostile_runs):
    result = against.compare(runs_frame(local_records([hostile_runs])), "anl_cifar10")
    warnings = " ".join(result.warnings)
    assert "<script>" in warnings and "\x1b[2J" in warnings and "[/]" in warnings and "\\write18" in warnings


def test_latex_body_holds_only_our_commands_and_comments_stay_comments(hostile_runs, tmp_path):
    latex = _write(hostile_runs, tmp_path, ".tex")
    for line in latex.splitlines():
        if line.startswith("%"):
            continue  # a comment line: nothing in it runs, and it cannot end early (one line each)
        assert set(re.findall(r"\\([A-Za-z]+)", line)) <= OURS, line
        assert "%" not in line.replace("\\%", "")
    assert "\\immediate" not in "\n".join(ln for ln in latex.splitlines() if not ln.startswith("%"))
    assert "\x1b" not in latex and "\u202e" not in latex


def test_markdown_and_html_carry_no_markup_from_the_files(hostile_runs, tmp_path):
    md = _write(hostile_runs, tmp_path, ".md")
    assert "<script>" not in md and "<img" not in md and "\x1b" not in md and "\u202e" not in md
    assert "&lt;script&gt;" in md
    assert not any(line.startswith(("\\immediate", "\\input")) for line in md.splitlines())
    html = _write(hostile_runs, tmp_path, ".html")

    class Tags(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags: set[str] = set()

        def handle_starttag(self, tag, attrs):
            self.tags.add(tag)

    parser = Tags()
    parser.feed(html)
    assert parser.tags <= {"p", "b", "table", "thead", "tbody", "tr", "th", "td"}
    assert "\x1b" not in html


def test_csv_cells_cannot_run_as_formulas(hostile_runs, tmp_path):
    import csv

    rows = list(csv.reader(io.StringIO(_write(hostile_runs, tmp_path, ".csv"))))
    assert len({len(r) for r in rows}) == 1
    for cell in (c for r in rows for c in r):
        if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
            assert re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", cell), cell


def test_terminal_shows_markup_as_text_and_no_escape_bytes(hostile_runs):
    result = against.compare(runs_frame(local_records([hostile_runs])), "anl_cifar10")
    buffer = io.StringIO()
    against.print_rich(result, console=Console(file=buffer, width=200, force_terminal=False))
    text = buffer.getvalue()
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert "[/]" in text and "[bold red]x[/bold red]" in text  # shown, not interpreted


def test_runs_of_a_hostile_preset_are_refused_in_one_visible_line(tmp_path, capsys):
    root = tmp_path / "sweep"
    run = root / "r"
    (run / ".hydra").mkdir(parents=True)
    bad = "\x1b[2J<script>\n\\write18{x}"
    (run / ".hydra" / "hydra.yaml").write_text(json.dumps({"hydra": {"runtime": {"choices": {
        "loss": "ce", "noise": "sym80", "protocol": bad}}}}))
    (run / ".hydra" / "config.yaml").write_text(json.dumps({"seed": 0}))
    with pytest.raises(SystemExit):
        report_main([str(root), "--against", "anl_cifar10"])
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "\x1b" not in err, err

"""Values from run files cannot inject markup into the report's outputs, nor files outside its folders.

Crafted loss and noise names, run directory names and overrides carry LaTeX
commands after a newline, HTML, spreadsheet formulas, terminal escapes and
matplotlib mathtext; every output must show them as text.
"""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from lossbench.report.cli import main
from lossbench.report.collect import local_records, runs_frame
from lossbench.report.render import print_rich
from lossbench.report.tables import build_table
from tests.support.hostile import LOSSES, NOISES, TEX_ATTACK

# LaTeX commands the report itself writes; anything else in the body came from a file.
OURS = {"begin", "end", "centering", "caption", "toprule", "midrule", "bottomrule", "multicolumn",
        "textbf", "pm", "dagger", "ddagger", "textbackslash", "textasciitilde", "textasciicircum", "textless",
        "textgreater", "textbar"}


@pytest.fixture
def crafted(make_run, tmp_path):
    i = 0
    for loss in LOSSES:
        for noise in NOISES:
            for seed in range(2):
                make_run(f"{i}{TEX_ATTACK}" if i % 5 == 0 else str(i), loss, noise, seed,
                         config={"loss.q": f"0.7{TEX_ATTACK}"} if i % 7 == 0 else None,
                         test_acc=0.5 + i / 200, **{"../../X": 0.5 + i / 100})
                i += 1
    make_run(f"failed{TEX_ATTACK}", LOSSES[0], NOISES[1], 9, status="failed")
    return tmp_path / "sweep"


def _write_all(sweep: Path, tmp_path: Path) -> dict[str, str]:
    outs = {s: tmp_path / "out" / f"table.{s}" for s in ("md", "tex", "csv", "html")}
    main([str(sweep), "--runs-csv", str(tmp_path / "out" / "runs.csv"),
          *[arg for out in outs.values() for arg in ("--out", str(out))]])
    texts = {s: p.read_text() for s, p in outs.items()}
    texts["runs"] = (tmp_path / "out" / "runs.csv").read_text()
    return texts


def test_latex_body_holds_only_our_commands_and_comments_stay_comments(crafted, tmp_path):
    latex = _write_all(crafted, tmp_path)["tex"]
    lines = latex.splitlines()
    body = [line for line in lines if not line.startswith("%")]
    comments = [line for line in lines if line.startswith("%")]
    assert body[0] == "\\begin{table}" and body[-1] == "\\end{table}"
    for line in body:
        assert set(re.findall(r"\\([A-Za-z]+)", line)) <= OURS, line
        assert "%" not in line.replace("\\%", "")  # no comment can start inside the body
    # one comment per line: per table (loss.q, crafted, differs inside cells: one table per setting)
    # the header, the tests, the status line, each listed run (1 failed), and nothing else
    runs = len(LOSSES) * len(NOISES) * 2
    with_q = len(range(0, runs, 7))  # the crafted fixture sets loss.q on every 7th run
    kinds = ("% lossbench report", "% test: ", f"% {with_q} in all: {with_q} completed",
             f"% {runs - with_q + 1} in all: {runs - with_q} completed", "% failed: ")
    assert all(c.startswith(kinds) for c in comments), comments
    assert sum(c.startswith("% lossbench report") for c in comments) == 2
    [failed] = [c for c in comments if c.startswith("% failed: ")]
    assert "\\n\\immediate\\write18{touch pwned}\\n" in failed
    assert ("for loss.q=0.7\\textbackslash{}n\\textbackslash{}immediate\\textbackslash{}write18"
            "\\{touch pwned\\}") in latex
    assert "\\textless{}script\\textgreater{}alert(1)\\textless{}/script\\textgreater{}" in latex
    assert "50\\% \\textbackslash{}def\\textbackslash{}x\\{y\\} \\#1 \\& \\_x\\_ " in latex


def test_markdown_and_html_carry_no_markup_from_the_files(crafted, tmp_path):
    texts = _write_all(crafted, tmp_path)
    md = texts["md"]
    assert "<" not in md and ">" not in md and "\x1b" not in md and "\u202e" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md and "a\\|b\\*\\*c\\*\\*" in md
    table = [line for line in md.splitlines() if line.startswith("| ")]
    header_pipes = len(re.findall(r"(?<!\\)\|", table[0]))
    body_rows = table[: table.index(next(t for t in table if t.startswith("| status")))]
    assert all(len(re.findall(r"(?<!\\)\|", row)) == header_pipes for row in body_rows)
    assert not any(line.startswith("\\input") or line.startswith("\\immediate") for line in md.splitlines())

    class Tags(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.attrs, self.text = set(), set(), []

        def handle_starttag(self, tag, attrs):
            self.tags.add(tag)
            self.attrs.update(name for name, _ in attrs)

        def handle_data(self, data):
            self.text.append(data)

    parser = Tags()
    parser.feed(texts["html"])
    assert parser.tags <= {"p", "b", "table", "thead", "tbody", "tr", "th", "td"}
    assert parser.attrs <= {"border", "class", "style", "halign", "valign", "rowspan"}
    shown = "".join(parser.text)
    assert "<script>alert(1)</script>" in shown and "<img src=x onerror=alert(1)>" in shown


def test_csv_cells_cannot_run_as_formulas(crafted, tmp_path):
    texts = _write_all(crafted, tmp_path)
    for name in ("csv", "runs"):
        rows = list(csv.reader(io.StringIO(texts[name])))
        assert len({len(r) for r in rows}) == 1  # one header, equal rows: the file parses as CSV
        for cell in (c for r in rows for c in r):
            if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
                assert re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", cell), (name, cell)
    table = list(csv.DictReader(io.StringIO(texts["csv"])))
    assert {r["loss"] for r in table} >= {"'=HYPERLINK(\"http://evil\",\"x\")", "<script>alert(1)</script>"}
    assert {r["noise"] for r in table} == {"sym20", "'@SUM(A1)", "'-2+3", "\u202egnp.exe"}


def test_terminal_output_carries_no_control_characters(crafted):
    frame = runs_frame(local_records([crafted]))
    console = Console(file=io.StringIO(), width=250)
    print_rich(build_table(frame, "test_acc", ["loss"], ["noise"]), frame, console=console)
    out = console.file.getvalue()
    assert "\x1b" not in out and "\u202e" not in out
    assert "\\x1b[2J\\x1b[31mred" in out and "\\u202egnp.exe" in out and "<script>alert(1)</script>" in out


def test_plot_files_stay_in_the_plots_folder_whatever_the_metric(crafted, tmp_path, capsys):
    before = {p for p in tmp_path.rglob("*")}
    main([str(crafted), "--metric", "../../X", "--rows", "loss", "--cols", "noise", "--format", "csv",
          "--plots", str(tmp_path / "a" / "b" / "plots"), "--reliability", str(crafted / "1")])
    new = {p for p in tmp_path.rglob("*")} - before
    plots = tmp_path / "a" / "b" / "plots"
    files = [p for p in new if p.is_file()]
    # one folder per setting (loss.q, crafted, differs inside cells), named safely, inside the plots folder
    assert len(files) == 4 and {p.name for p in files} == {"_.._X_vs_noise.png", "_.._X_vs_noise.svg"}
    assert all(p.parent.parent == plots for p in files)
    crafted_q = "loss.q_0.7__immediate_write18_touch_pwned___input__etc_passwd__"
    assert {p.parent.name for p in files} == {"loss.q__", crafted_q}
    assert "wrote" not in capsys.readouterr().out

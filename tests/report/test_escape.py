"""Each output format's escaping, on concrete strings."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from lossbench.report import escape
from lossbench.report.plots import _save


def test_printable_makes_one_visible_line():
    assert escape.printable("a\nb\r\tc") == "a\\nb\\r\\tc"
    assert escape.printable("\x1b[31m\x00") == "\\x1b[31m\\x00"
    assert escape.printable("x\u2028y\u202ez\u200b") == "x\\u2028y\\u202ez\\u200b"
    assert escape.printable("bad\udcff") == "bad\\udcff"
    assert escape.printable("nce_rce ± é 日本") == "nce_rce ± é 日本"
    assert escape.printable("abcdef", 4) == "abc…"


def test_latex():
    assert escape.latex("a_b 50% $x$ #1 & {y} ~^ \\input") == (
        "a\\_b 50\\% \\$x\\$ \\#1 \\& \\{y\\} \\textasciitilde{}\\textasciicircum{} \\textbackslash{}input")
    assert escape.latex("<b>|") == "\\textless{}b\\textgreater{}\\textbar{}"
    assert escape.latex("x\n\\input{y}") == "x\\textbackslash{}n\\textbackslash{}input\\{y\\}"
    assert escape.latex_comment("run\n\\input{y}\r") == "run\\n\\input{y}\\r"


def test_markdown():
    assert escape.markdown("nce_rce") == "nce_rce"  # intraword: never emphasis
    assert escape.markdown("_x_ a_ *b* `c` [d](e) a|b ~f~ $g$") == (
        "\\_x\\_ a\\_ \\*b\\* \\`c\\` \\[d](e) a\\|b \\~f\\~ \\$g\\$")
    assert escape.markdown("<img src=x onerror=alert(1)> & \\") == (
        "&lt;img src=x onerror=alert(1)&gt; &amp; \\\\")


def test_html_and_rich():
    assert escape.html_text("<a href=\"x\">'") == "&lt;a href=&quot;x&quot;&gt;&#x27;"
    assert escape.rich_text("[bold]x\\") == "\\[bold]x\\\\"


@pytest.mark.parametrize("cell, safe", [
    ("=1+2", "'=1+2"), ("+1+1", "'+1+1"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("-0.5", "-0.5"), ("+3", "+3"), ("-1e-05", "-1e-05"),
    ("ce", "ce"), ("a=b", "a=b"), (-0.5, -0.5), (None, None),
])
def test_csv_cell(cell, safe):
    assert escape.csv_cell(cell) == safe


def test_file_stem_and_plots_stay_in_their_folder(tmp_path):
    assert escape.file_stem("../../X_vs_noise") == "_.._X_vs_noise"
    assert escape.file_stem("/etc/passwd") == "_etc_passwd"
    assert escape.file_stem("...") == "figure" and escape.file_stem("test_acc") == "test_acc"
    out = tmp_path / "plots"
    paths = _save(Figure(), out, "../../../evil/name")
    assert paths == [out / "_.._.._evil_name.png", out / "_.._.._evil_name.svg"]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["_.._.._evil_name.png",
                                                                          "_.._.._evil_name.svg"]

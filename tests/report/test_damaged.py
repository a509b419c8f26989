"""The report on a corpus of damaged run directories: each is listed with why, the good runs render.

Fabricated run folders only (no training): a truncated .hydra/hydra.yaml,
truncated or hand-edited summary.json and failure.json, files that are not
files, crafted values (status a list, test_acc as text, a loss name with
matplotlib mathtext), damaged metrics.jsonl and W&B run files.
"""

from __future__ import annotations

import csv
import io
import json
import os
import zlib
from pathlib import Path

import pytest

from lossbench.report import collect
from lossbench.report.cli import main
from lossbench.report.collect import read_run, runs_frame

from .conftest import write_wandb_file

NOT_READY = "0 epoch(s) logged; no summary.json or failure.json (still running, or killed)"


def _edit_summary(run: Path, **changes) -> None:
    summary = json.loads((run / "summary.json").read_text())
    for key, value in changes.items():
        if value is _DROP:
            del summary[key]
        else:
            summary[key] = value
    (run / "summary.json").write_text(json.dumps(summary))


_DROP = object()


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _hydra_yaml_cut(run: Path) -> None:
    """hydra.yaml as Hydra writes it (block YAML, a quoted help text before the choices), cut inside
    the quoted text, as a kill or a full disk would leave it."""
    from omegaconf import OmegaConf

    text = OmegaConf.to_yaml({"hydra": {
        "help": {"header": "lossbench run: train one model (or, with -m, a sweep)\n"},
        "runtime": {"choices": {"loss": "gce", "noise": "sym60", "hydra/launcher": "basic"}}}})
    (run / ".hydra" / "hydra.yaml").write_text(text[: text.index("train one") + 5])


def _seed(name: str) -> int:
    """A seed of each case's own: runs of one experiment and seed would count once."""
    return zlib.crc32(name.encode()) % 100_000


def _completed(make_run, name):
    return make_run(name, "ce", "sym60", _seed(name), test_acc=0.5, test_ece=0.2)


def _unfinished(make_run, name):
    return make_run(name, "gce", "sym60", _seed(name), status="unfinished")


def _failed(make_run, name):
    return make_run(name, "gce", "sym60", _seed(name), status="failed")


# (id, damage(maker, name), the status the report gives the run, its error: the "why" it lists; None: none)
CASES = [
    ("hydra_yaml_truncated", lambda m, n: _hydra_yaml_cut(_unfinished(m, n)), "corrupt",
     ".hydra/hydra.yaml: not valid YAML (found unexpected end of stream at line 3 column 34)"),
    ("summary_truncated", lambda m, n: _truncate(_completed(m, n) / "summary.json", 60), "corrupt",
     "summary.json: not valid JSON (Expecting property name enclosed in double quotes at line 1 column 61)"),
    ("summary_empty", lambda m, n: _truncate(_completed(m, n) / "summary.json", 0),
     "corrupt", "summary.json: empty file"),
    ("summary_a_list", lambda m, n: (_completed(m, n) / "summary.json").write_text("[1, 2]"),
     "corrupt", "summary.json: holds a list, not an object"),
    ("summary_not_utf8", lambda m, n: (_completed(m, n) / "summary.json").write_bytes(b'{"a": "\xff"}'),
     "corrupt", "summary.json: not UTF-8 text (byte 7)"),
    ("summary_too_deep", lambda m, n: (_completed(m, n) / "summary.json").write_text("[" * 100_000),
     "corrupt", "summary.json: not valid JSON (RecursionError)"),
    ("summary_a_folder", lambda m, n: ((_completed(m, n) / "summary.json").unlink(),
                                       (m.root / n / "summary.json").mkdir()),
     "corrupt", "summary.json: not a regular file"),
    ("summary_a_fifo", lambda m, n: ((_completed(m, n) / "summary.json").unlink(),
                                     os.mkfifo(m.root / n / "summary.json")),
     "corrupt", "summary.json: not a regular file"),
    ("summary_links_to_dev_zero", lambda m, n: ((_completed(m, n) / "summary.json").unlink(),
                                                (m.root / n / "summary.json").symlink_to("/dev/zero")),
     "corrupt", "summary.json: not a regular file"),
    ("summary_links_to_nothing", lambda m, n: ((_completed(m, n) / "summary.json").unlink(),
                                               (m.root / n / "summary.json").symlink_to(m.root / "gone")),
     "corrupt", "summary.json: a link to nothing"),
    ("status_a_list", lambda m, n: _edit_summary(_completed(m, n), status=["completed"]),
     "corrupt", "summary.json: status is a list; expected 'completed' or 'diverged'"),
    ("status_unknown", lambda m, n: _edit_summary(_completed(m, n), status="done"),
     "corrupt", "summary.json: status 'done'; expected 'completed' or 'diverged'"),
    ("status_failed_in_summary", lambda m, n: _edit_summary(_completed(m, n), status="failed"),
     "corrupt", "summary.json: status 'failed'; expected 'completed' or 'diverged'"),
    ("no_status", lambda m, n: _edit_summary(_completed(m, n), status=_DROP),
     "corrupt", "summary.json: no status"),
    ("test_acc_text", lambda m, n: _edit_summary(_completed(m, n), test_acc="abc"),
     "corrupt", "summary.json: test_acc is 'abc', not a number"),
    ("test_acc_bool", lambda m, n: _edit_summary(_completed(m, n), test_acc=True),
     "corrupt", "summary.json: test_acc is true, not a number"),
    ("noise_rate_text", lambda m, n: _edit_summary(_completed(m, n), noise_rate="high"),
     "corrupt", "summary.json: noise_rate is 'high', not a number"),
    ("loss_an_object", lambda m, n: _edit_summary(_completed(m, n), loss={"name": "ce"}),
     "corrupt", "summary.json: loss is an object, not text"),
    ("seed_not_integer", lambda m, n: _edit_summary(_completed(m, n), seed=1.5),
     "corrupt", "summary.json: seed is 1.5, not an integer"),
    ("overrides_text", lambda m, n: _edit_summary(_completed(m, n), overrides="loss=ce"),
     "corrupt", "summary.json: overrides is 'loss=ce', not a list of text"),
    ("two_problems", lambda m, n: _edit_summary(_completed(m, n), status=3, test_ece=[1], test_nll="x"),
     "corrupt", "summary.json: status is 3; expected 'completed' or 'diverged'; "
                "summary.json: test_nll is 'x', not a number"),
    ("failure_truncated", lambda m, n: _truncate(_failed(m, n) / "failure.json", 30), "corrupt",
     "failure.json: not valid JSON (Expecting value at line 1 column 31)"),
    ("failure_says_completed",
     lambda m, n: (_failed(m, n) / "failure.json").write_text('{"status": "completed"}'),
     "corrupt", "failure.json: status 'completed'; expected 'failed'"),
    ("failure_choice_a_number",
     lambda m, n: (_failed(m, n) / "failure.json").write_text('{"status": "failed", "choices": {"loss": 3}}'),
     "corrupt", "failure.json: choices.loss is 3, not text"),
    ("config_yaml_a_list",
     lambda m, n: (_unfinished(m, n) / ".hydra" / "config.yaml").write_text("- a\n- b\n"),
     "corrupt", ".hydra/config.yaml: holds a list, not a mapping"),
    ("overrides_yaml_an_object",
     lambda m, n: (_unfinished(m, n) / ".hydra" / "overrides.yaml").write_text("a: 1\n"),
     "corrupt", ".hydra/overrides.yaml: holds an object, not a list of text"),
    ("hydra_yaml_without_choices",
     lambda m, n: (_unfinished(m, n) / ".hydra" / "hydra.yaml").write_text("hydra: {run: {dir: x}}\n"),
     "corrupt", ".hydra/hydra.yaml: no hydra.runtime.choices"),
    ("hydra_yaml_hydra_a_list",
     lambda m, n: (_unfinished(m, n) / ".hydra" / "hydra.yaml").write_text("hydra: [runtime]\n"),
     "corrupt", ".hydra/hydra.yaml: no hydra.runtime.choices"),
    ("hydra_yaml_choice_a_list", lambda m, n: (_unfinished(m, n) / ".hydra" / "hydra.yaml").write_text(
        "hydra: {runtime: {choices: {loss: [gce], noise: sym60}}}\n"),
     "corrupt", ".hydra/hydra.yaml: choice loss is a list, not text"),
    ("hydra_yaml_alias_bomb", lambda m, n: (_unfinished(m, n) / ".hydra" / "hydra.yaml").write_text(
        "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True))),
     "corrupt", ".hydra/hydra.yaml: not valid YAML (YAML aliases (*name) are not accepted)"),
    ("metrics_jsonl_a_folder", lambda m, n: (_unfinished(m, n) / "metrics.jsonl").mkdir(),
     "corrupt", "metrics.jsonl: not a regular file"),
    # damaged, but the run's record is sound: it stays what it is
    ("summary_with_bom", lambda m, n: (lambda r: (r / "summary.json").write_bytes(
        b"\xef\xbb\xbf" + (r / "summary.json").read_bytes()))(_completed(m, n)), "completed", None),
    ("stale_failure_beside_summary",
     lambda m, n: (_completed(m, n) / "failure.json").write_text('{"status": "failed", "error": "old"}'),
     "completed", None),
    ("hydra_files_truncated_beside_a_summary",
     lambda m, n: [_truncate(p, 5) for p in (_completed(m, n) / ".hydra").iterdir()], "completed", None),
    ("bad_reliability_bins", lambda m, n: _edit_summary(_completed(m, n), test_reliability={"n_bins": "x"}),
     "completed", None),
    ("infinite_nll", lambda m, n: _edit_summary(_completed(m, n), test_nll="inf"), "completed", None),
    ("metrics_jsonl_garbage", lambda m, n: (_completed(m, n) / "metrics.jsonl").write_text(
        '[1]\n{"epoch": "x"}\n{"epoch": 0, "test_acc": "abc"}\n{"epoch": 1, "test_acc": 0.4}\n{"ep'),
     "completed", None),
    ("unfinished_with_a_torn_line",
     lambda m, n: (_unfinished(m, n) / "metrics.jsonl").write_text('{"epoch": 0}\n{"epoch": 1}\n{"epo'),
     "unfinished", None),
]


class _Maker:
    """make_run, plus where it puts the runs (for damage that replaces a file by something else)."""

    def __init__(self, make_run, root: Path):
        self.make_run, self.root = make_run, root

    def __call__(self, *args, **kwargs):
        return self.make_run(*args, **kwargs)


@pytest.fixture
def maker(make_run, tmp_path):
    return _Maker(make_run, tmp_path / "sweep")


@pytest.mark.parametrize("case, damage, status, error", CASES, ids=[c[0] for c in CASES])
def test_each_damage_is_read_as_expected(maker, case, damage, status, error):
    damage(maker, case)
    record = read_run(maker.root / case)
    row = runs_frame([record]).iloc[0]
    assert row["status"] == status
    assert (row.get("error") if isinstance(row.get("error"), str) else None) == error


RELIABILITY = {"n_bins": 2, "confidence": [0.25, 0.75], "accuracy": [0.5, 0.5], "count": [2, 2]}
MATHTEXT = "$\\frac{1}{0$"  # unbalanced: matplotlib's mathtext parser fails on it
GOOD = [("ce", 0, 0.80), ("ce", 1, 0.82), ("ce", 2, 0.84), ("gce", 0, 0.85), ("gce", 1, 0.86),
        ("gce", 2, 0.90), (MATHTEXT, 0, 0.70)]


def test_the_whole_corpus_beside_good_runs(maker, tmp_path, monkeypatch, capsys):
    for i, (loss, seed, acc) in enumerate(GOOD):
        maker(f"good{i}", loss, "sym20", seed, test_acc=acc, test_reliability=RELIABILITY,
              history=[{"epoch": e, "test_acc": acc * e / 2, "memorization": 0.1} for e in (1, 2)])
    for case, damage, _, _ in CASES:
        damage(maker, case)
    monkeypatch.chdir(tmp_path)
    outs = [f"out/table.{suffix}" for suffix in ("md", "tex", "csv", "html")]
    main(["sweep", "--plots", "plots", "--runs-csv", "out/runs.csv",
          *[arg for out in outs for arg in ("--out", out)]])
    captured = capsys.readouterr()
    assert captured.out == ""  # every message went to stderr

    cells = {(r["loss"], r["noise"]): r for r in csv.DictReader(io.StringIO(Path(outs[2]).read_text()))}
    for loss, values in (("ce", [0.80, 0.82, 0.84]), ("gce", [0.85, 0.86, 0.90]), (MATHTEXT, [0.70])):
        cell = cells[(loss, "sym20")]
        assert float(cell["mean"]) == pytest.approx(sum(values) / len(values))
        assert int(cell["n"]) == int(cell["runs"]) == len(values)
    assert cells[("gce", "sym20")]["best"] == "True"

    counts = {s: sum(1 for c in CASES if c[2] == s) for s in ("completed", "unfinished", "corrupt")}
    total = len(GOOD) + len(CASES)
    line = (f"{total} in all: {len(GOOD) + counts['completed']} completed, 0 diverged, 0 failed, "
            f"{counts['unfinished']} unfinished, {counts['corrupt']} corrupt")
    assert line in captured.err
    markdown = Path(outs[0]).read_text()
    assert f"**Runs.** {line}." in markdown
    from lossbench.report.escape import markdown as md_escape

    listed = [row for row in markdown.splitlines() if row.startswith("| corrupt")]
    assert len(listed) == counts["corrupt"]
    for case, _, status, error in CASES:
        rows = [row for row in markdown.splitlines() if f"| sweep/{case} " in row]
        if status == "completed":
            assert rows == []
            continue
        [row] = rows
        assert row.startswith(f"| {status} ")
        if error is not None:
            assert row.rstrip(" |").endswith(md_escape(error))
    latex = Path(outs[1]).read_text()
    assert latex.count("\n% corrupt: sweep/") == counts["corrupt"]
    for name in ("test_acc_vs_noise", "reliability", "learning_curves"):
        for suffix in ("png", "svg"):
            assert (tmp_path / "plots" / f"{name}.{suffix}").stat().st_size > 1000
    runs = list(csv.DictReader(io.StringIO(Path("out/runs.csv").read_text())))
    assert len(runs) == total and {r["status"] for r in runs} == {"completed", "unfinished", "corrupt"}

    monkeypatch.setenv("COLUMNS", "200")
    main(["sweep"])  # the terminal table
    out = capsys.readouterr().out
    assert "*87.00 ± 2.65 (3)*" in out and f"{counts['corrupt']} corrupt" in out


def test_a_file_too_big_to_read(maker, monkeypatch):
    run = _completed(maker, "big")
    monkeypatch.setattr(collect, "MAX_FILE_BYTES", 100)
    row = runs_frame([read_run(run)]).iloc[0]
    assert (row["status"], row["error"]) == ("corrupt", "summary.json: larger than 100 bytes")


def test_a_summary_that_cannot_be_opened(maker, monkeypatch):
    """What a collaborator sees of a summary.json created mode 0600 by someone else (simulated: the
    test runs as root here, who reads any file)."""
    run = _completed(maker, "private")

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(collect, "open", refuse, raising=False)
    row = runs_frame([read_run(run)]).iloc[0]
    assert (row["status"], row["error"]) == ("corrupt", "summary.json: cannot read (Permission denied)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_summary_others_cannot_read(maker):
    run = _completed(maker, "private")
    (run / "summary.json").chmod(0)
    row = runs_frame([read_run(run)]).iloc[0]
    assert (row["status"], row["error"]) == ("corrupt", "summary.json: cannot read (Permission denied)")


def test_damaged_wandb_files(maker, tmp_path, capsys):
    good = maker("local", "ce", "sym20", 0, test_acc=0.8)
    folder = good / "wandb" / "offline-run-20261201_100000-aaaa"
    folder.mkdir(parents=True)
    (folder / "run-aaaa.wandb").write_bytes(b":W&B\xe1\xbe\x00junk")  # a right header, then garbage
    remote = tmp_path / "wandb_only" / "job"
    path = write_wandb_file(remote, "bbbb", {"status": "completed", "loss": "gce", "test_acc": 0.9},
                            {"loss": "gce", "loss.q": 0.7, "noise": "sym20", "noise.rate": 0.2, "seed": 0})
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF  # a payload byte of the first record: its checksum no longer matches
    path.write_bytes(bytes(data))
    main([str(maker.root), "--wandb-dir", str(maker.root), "--wandb-dir", str(tmp_path / "wandb_only"),
          "--format", "md"])
    out = capsys.readouterr().out
    assert "2 in all: 1 completed, 0 diverged, 0 failed, 0 unfinished, 1 corrupt" in out
    [row] = [r for r in out.splitlines() if r.startswith("| corrupt")]
    assert f"| {remote} " in row and "| run-bbbb.wandb: checksum mismatch in the chunk at byte 7 |" in row

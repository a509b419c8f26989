"""`lossbench report --against PRESET` on fabricated run directories: exact differences, spread, claims."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from lossbench.protocols import ProtocolError
from lossbench.report import against
from lossbench.report.cli import main as report_main
from lossbench.report.collect import local_records, runs_frame


def _run(root: Path, name: str, protocol: str, loss: str, noise: str, seed: int, status: str = "completed",
         overrides: tuple[str, ...] = (), **figures) -> Path:
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    config = {"seed": seed, "loss": {"_target_": f"x.{loss}"}, "protocol": {"name": protocol}}
    (run / ".hydra" / "config.yaml").write_text(json.dumps(config))
    choices = {"dataset": "cifar10", "model": "cnn8", "loss": loss, "noise": noise, "reweight": "none",
               "protocol": protocol}
    (run / ".hydra" / "hydra.yaml").write_text(json.dumps({"hydra": {"runtime": {"choices": choices}}}))
    all_overrides = [f"+experiment={protocol}", f"loss={loss}", f"noise={noise}", f"seed={seed}", *overrides]
    if status == "completed":
        summary = {"status": status, **choices, "seed": seed, **figures, "overrides": all_overrides,
                   "config": config}
        (run / "summary.json").write_text(json.dumps(summary))
    return run


@pytest.fixture
def anl_runs(tmp_path):
    """anl_cifar10 runs: CE and NCE+RCE at sym80 (3 and 2 seeds), ANL-CE at sym80 (1 seed + 1 unfinished)."""
    root = tmp_path / "sweep"
    for seed, acc in enumerate([0.20, 0.22, 0.18]):
        _run(root, f"ce-sym80-s{seed}", "anl_cifar10", "ce", "sym80", seed, test_acc=acc)
    for seed, acc in enumerate([0.50, 0.58]):
        _run(root, f"nce_rce-sym80-s{seed}", "anl_cifar10", "nce_rce", "sym80", seed, test_acc=acc)
    _run(root, "anl_ce-sym80-s0", "anl_cifar10", "anl_ce", "sym80", 0, test_acc=0.63)
    _run(root, "anl_ce-sym80-s1", "anl_cifar10", "anl_ce", "sym80", 1, status="unfinished")
    return root


def _frame(root: Path) -> pd.DataFrame:
    return runs_frame(local_records([root]))


def _cell(result, loss: str, noise: str) -> pd.Series:
    cells = result.cells
    return cells[(cells["loss"] == loss) & (cells["noise"] == noise)].iloc[0]


def test_cells_give_exact_differences_and_spread(anl_runs):
    result = against.compare(_frame(anl_runs), "anl_cifar10")
    assert result.source == "published"
    ce = _cell(result, "ce", "sym80")          # ours 20, 22, 18 (%); published 19.74 [2nd]
    assert ce["ours_mean"] == pytest.approx(20.0) and ce["ours_std"] == pytest.approx(2.0)
    assert ce["ours_n"] == 3 and ce["published_mean"] == 19.74 and ce["mark"] == "[2nd]"
    assert ce["difference"] == pytest.approx(20.0 - 19.74)
    assert ce["within_spread"] is True          # 18 <= 19.74 <= 22
    nce = _cell(result, "nce_rce", "sym80")     # ours 50, 58; published 54.99
    assert nce["difference"] == pytest.approx(54.0 - 54.99) and nce["within_spread"] is True
    anl = _cell(result, "anl_ce", "sym80")      # one completed run of two: no spread
    assert anl["ours_n"] == 1 and anl["ours_runs"] == 2
    assert anl["difference"] == pytest.approx(63.0 - 62.28) and anl["within_spread"] is None
    missing = _cell(result, "ce", "sym40")      # published, no runs
    assert missing["ours_n"] == 0 and pd.isna(missing["difference"])
    nce40 = _cell(result, "nce_rce", "sym40")
    assert nce40["published_mean"] == 85.89


def test_published_outside_the_spread(tmp_path):
    root = tmp_path / "sweep"
    for seed, acc in enumerate([0.30, 0.31]):
        _run(root, f"ce-sym80-s{seed}", "anl_cifar10", "ce", "sym80", seed, test_acc=acc)
    ce = _cell(against.compare(_frame(root), "anl_cifar10"), "ce", "sym80")
    assert ce["within_spread"] is False and ce["difference"] == pytest.approx(30.5 - 19.74)


def test_claims_held_not_held_undetermined(anl_runs):
    claims = against.compare(_frame(anl_runs), "anl_cifar10").claims.set_index("claim")
    # ANL-CE 63 vs NCE+RCE 54 at sym80: +9 > 5 points
    assert claims.loc["ANL-CE beats NCE+RCE at sym 0.8 by more than 5 points", "verdict"] == "held"
    assert "+9.00" in claims.loc["ANL-CE beats NCE+RCE at sym 0.8 by more than 5 points", "ours"]
    # NCE+RCE 54 vs CE 20: +34 > 20
    assert claims.loc["NCE+RCE beats CE at sym 0.8 by more than 20 points", "verdict"] == "held"
    # needs sym40, asym20, asym40 runs too
    every = "ANL-CE beats NCE+RCE at sym 0.4 and 0.8 and asym 0.2 and 0.4"
    assert claims.loc[every, "verdict"] == "undetermined"


def test_claim_not_held(tmp_path):
    root = tmp_path / "sweep"
    _run(root, "ce-sym80-s0", "anl_cifar10", "ce", "sym80", 0, test_acc=0.40)
    _run(root, "nce_rce-sym80-s0", "anl_cifar10", "nce_rce", "sym80", 0, test_acc=0.55)
    claims = against.compare(_frame(root), "anl_cifar10").claims.set_index("claim")
    assert claims.loc["NCE+RCE beats CE at sym 0.8 by more than 20 points", "verdict"] == "not held"


def test_lower_is_better_claims_follow_the_metric(tmp_path):
    """Mukhoti's ECE claims: FLSD-53 beats CE when its ECE is lower."""
    root = tmp_path / "sweep"
    _run(root, "ce-clean-s0", "mukhoti_cifar10", "ce", "clean", 0, test_acc=0.95, test_ece=0.040,
         test_ece_ts_noisy=0.012)
    _run(root, "flsd53-clean-s0", "mukhoti_cifar10", "flsd53", "clean", 0, test_acc=0.95, test_ece=0.015,
         test_ece_ts_noisy=0.014)
    result = against.compare(_frame(root), "mukhoti_cifar10")
    claims = result.claims.set_index("claim")
    assert claims.loc["FLSD-53 is better calibrated than CE before temperature scaling (lower ECE)",
                      "verdict"] == "held"
    assert claims.loc["FLSD-53 is better calibrated than CE after temperature scaling (lower ECE)",
                      "verdict"] == "not held"
    ece = result.cells[(result.cells["metric"] == "test_ece") & (result.cells["loss"] == "ce")].iloc[0]
    assert ece["ours_mean"] == pytest.approx(4.0) and ece["difference"] == pytest.approx(4.0 - 4.35)


def test_runs_of_another_preset_are_refused(tmp_path, capsys):
    root = tmp_path / "sweep"
    _run(root, "ce-sym80-s0", "apl_cifar10", "ce", "sym80", 0, test_acc=0.2)
    with pytest.raises(ProtocolError, match="'apl_cifar10' \\(1 run\\), not of 'anl_cifar10'"):
        against.compare(_frame(root), "anl_cifar10")
    out = tmp_path / "t.md"
    with pytest.raises(SystemExit) as exc:
        report_main([str(root), "--against", "anl_cifar10", "--out", str(out)])
    assert exc.value.code == 2 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "compare them --against apl_cifar10" in err[0]


def test_unknown_preset_is_refused(anl_runs, capsys):
    with pytest.raises(SystemExit) as exc:
        report_main([str(anl_runs), "--against", "anl_cifar"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "unknown preset 'anl_cifar'; known: anl_cifar10, anl_cifar100" in err and "\n" not in err


def test_deviations_are_said(tmp_path):
    root = tmp_path / "sweep"
    _run(root, "ce-sym80-s0", "anl_cifar10", "ce", "sym80", 0, overrides=("trainer.epochs=2", "data_dir=/d"),
         test_acc=0.2)
    _run(root, "nce_rce-sym80-s0", "anl_cifar10", "nce_rce", "sym80", 0, overrides=("loss.beta=3",),
         test_acc=0.5)
    result = against.compare(_frame(root), "anl_cifar10")
    warning = next(w for w in result.warnings if "deviate" in w)
    assert "trainer.epochs=2" in warning and "loss.beta=3" in warning and "data_dir" not in warning


@pytest.mark.parametrize("suffix, needle", [
    (".md", "| 20.00 ± 2.00 (3) | 19.74 \\[2nd] | +0.26"),  # markdown escapes "["
    (".tex", "nce\\_rce & sym80 & 54.00 $\\pm$ 5.66 (2)"),  # names escaped, symbols not
    (".html", "<td>20.00 ± 2.00 (3)</td>"),
    (".csv", "cell,anl_cifar10,published"),
])
def test_formats(anl_runs, tmp_path, suffix, needle, capsys):
    out = tmp_path / f"against{suffix}"
    report_main([str(anl_runs), "--against", "anl_cifar10", "--out", str(out)])
    text = out.read_text()
    assert needle in (re.sub(r" {2,}", " ", text) if suffix == ".md" else text)
    if suffix != ".csv":
        assert "19.74 [2nd]" in text.replace("$", "").replace("\\[", "[")
        assert "held" in text
    else:
        rows = pd.read_csv(out)
        ce = rows[(rows["kind"] == "cell") & (rows["loss"] == "ce") & (rows["noise"] == "sym80")].iloc[0]
        assert ce["difference"] == pytest.approx(20.0 - 19.74)
        assert set(rows.loc[rows["kind"] == "claim", "verdict"]) == {"held", "undetermined"}


def test_terminal_output(anl_runs, capsys):
    report_main([str(anl_runs), "--against", "anl_cifar10"])
    out = capsys.readouterr().out
    assert "anl_cifar10" in out and "+0.26" in out and "undetermined" in out


# ------------------------------------------------------------------ several published sources per cell

MENON = """\
preset: menon_mnist
paper: Menon et al. 2020, "Can gradient clipping mitigate label noise?" (ICLR)
dataset: MNIST
metric: test_acc
kind: last epoch
source: fabricated for a test
sources:
  paper: {label: "Menon et al. 2020 (bar chart)", mark: "[figure]", source: "dmizr/phuber docs/mnist.png"}
  reproduction: {label: "[Re] Mizrahi et al. 2021", mark: "[README]", source: "dmizr/phuber README"}
published:
  - {loss: ce, noise: sym60, mean: 91.1, source_id: paper}
  - {loss: ce, noise: sym60, mean: 97.5, std: 0.1, source_id: reproduction}
  - {loss: phuber, noise: sym60, mean: 96.5, source_id: paper}
claims:
  - {text: "PHuber beats CE at sym60", better: phuber, worse: ce, noise: sym60, source_id: reproduction}
"""


@pytest.fixture
def data_files(tmp_path, monkeypatch):
    """Protocol data files read from a folder of the test's own (``write(name, text)``)."""
    from lossbench.protocols import catalogue

    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setattr(catalogue, "_data_dir", lambda: folder)
    catalogue.preset_names.cache_clear()
    catalogue.load_protocol.cache_clear()

    def write(name: str, text: str) -> None:
        (folder / f"{name}.yaml").write_text(text)
        catalogue.preset_names.cache_clear()
        catalogue.load_protocol.cache_clear()

    yield write
    catalogue.preset_names.cache_clear()
    catalogue.load_protocol.cache_clear()


@pytest.fixture
def menon_runs(tmp_path, data_files):
    data_files("menon_mnist", MENON)
    root = tmp_path / "sweep"
    for seed, acc in enumerate([0.97, 0.98, 0.99]):
        _run(root, f"ce-sym60-s{seed}", "menon_mnist", "ce", "sym60", seed, test_acc=acc)
    for seed, acc in enumerate([0.95, 0.96]):
        _run(root, f"phuber-sym60-s{seed}", "menon_mnist", "phuber", "sym60", seed, test_acc=acc)
    _run(root, "gce-sym20-s0", "menon_mnist", "gce", "sym20", 0, test_acc=0.5)
    return root


def _pair(result, loss: str, noise: str, source_id: str) -> pd.Series:
    cells = result.cells
    mask = (cells["loss"] == loss) & (cells["noise"] == noise) & (cells["source_id"] == source_id)
    return cells[mask].iloc[0]


def test_each_cell_against_each_source(menon_runs):
    result = against.compare(_frame(menon_runs), "menon_mnist")
    paper = _pair(result, "ce", "sym60", "paper")       # ours 97, 98, 99; the bar chart 91.1
    assert paper["ours_mean"] == pytest.approx(98.0) and paper["published_mean"] == 91.1
    assert paper["mark"] == "[figure]" and paper["source"] == "dmizr/phuber docs/mnist.png"
    assert paper["difference"] == pytest.approx(98.0 - 91.1) and paper["within_spread"] is False
    redo = _pair(result, "ce", "sym60", "reproduction")  # 97.5 +- 0.1 [README]
    assert redo["published_std"] == 0.1 and redo["mark"] == "[README]"
    assert redo["difference"] == pytest.approx(0.5) and redo["within_spread"] is True
    assert redo["source_label"] == "[Re] Mizrahi et al. 2021"
    phuber = _pair(result, "phuber", "sym60", "paper")   # ours 95, 96; 96.5 lies above
    assert phuber["difference"] == pytest.approx(-1.0) and phuber["within_spread"] is False
    assert not ((result.cells["loss"] == "phuber") & (result.cells["source_id"] == "reproduction")).any()
    claim = result.claims.iloc[0]  # PHuber 95.5 vs CE 98: not held, and it rests on the reproduction
    assert claim["verdict"] == "not held" and claim["source_id"] == "reproduction"
    assert claim["mark"] == "[README]"


def test_a_cell_with_no_published_number_still_shows_ours(menon_runs):
    result = against.compare(_frame(menon_runs), "menon_mnist")
    gce = result.cells[result.cells["loss"] == "gce"]
    assert len(gce) == 1 and gce.iloc[0]["ours_mean"] == pytest.approx(50.0)
    assert pd.isna(gce.iloc[0]["source_id"]) and pd.isna(gce.iloc[0]["published_mean"])


@pytest.mark.parametrize("suffix", [".md", ".tex", ".html", ".csv"])
def test_several_sources_in_every_format(menon_runs, tmp_path, suffix):
    out = tmp_path / f"against{suffix}"
    report_main([str(menon_runs), "--against", "menon_mnist", "--out", str(out)])
    text = out.read_text()
    if suffix == ".csv":
        rows = pd.read_csv(out)
        cells = rows[rows["kind"] == "cell"]
        assert set(cells["source_id"].dropna()) == {"paper", "reproduction"} and len(cells) == 4
        assert rows.loc[rows["kind"] == "claim", "source_id"].tolist() == ["reproduction"]
        return
    plain = re.sub(r" {2,}", " ", text).replace("\\[", "[").replace("$\\pm$", "±")
    for needle in ("Menon et al. 2020 (bar chart)", "[Re] Mizrahi et al. 2021", "98.00 ± 1.00 (3)",
                   "91.10 [figure]", "+6.90", "97.50 ± 0.10 [README]", "+0.50", "50.00 (1)",
                   "[figure]: read off a published figure", "not held"):
        assert needle in plain, needle
    if suffix == ".md":
        ce = next(line for line in plain.splitlines() if line.startswith("| ce "))
        assert ce.split("|")[3:10] == [" 98.00 ± 1.00 (3) ", " 91.10 [figure] ", " +6.90 ", " no ",
                                       " 97.50 ± 0.10 [README] ", " +0.50 ", " yes "]
        assert "menon_mnist" in plain.splitlines()[0]


def test_several_sources_in_the_terminal(menon_runs, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    report_main([str(menon_runs), "--against", "menon_mnist"])
    out = capsys.readouterr().out
    for needle in ("[Re] Mizrahi et al. 2021", "Menon et al. 2020 (bar chart)", "91.10 [figure]", "+6.90",
                   "97.50 ± 0.10 [README]", "[code]", "[lossbench]"):
        assert needle in out, needle  # brackets shown as text, not taken for rich markup


def test_a_source_id_must_be_declared(data_files):
    from lossbench.protocols import load_protocol

    data_files("menon_mnist", MENON.replace("source_id: paper}", "source_id: papers}", 1))
    with pytest.raises(ProtocolError, match="source_id 'papers' of ce/sym60; declared: paper, reproduction"):
        load_protocol("menon_mnist")


def test_a_preset_with_no_published_numbers_shows_ours(tmp_path):
    """apl_mnist publishes nothing: ours are still shown, and the header says what is compared."""
    root = tmp_path / "sweep"
    for seed, acc in enumerate([0.97, 0.98, 0.99]):
        _run(root, f"ce-sym20-s{seed}", "apl_mnist", "ce", "sym20", seed, test_acc=acc)
    result = against.compare(_frame(root), "apl_mnist")
    assert len(result.cells) == 1 and result.cells.iloc[0]["ours_mean"] == pytest.approx(98.0)
    md = against.render(result, "md")
    assert "| ce | sym20 | 98.00 ± 1.00 (3) |" in re.sub(r" {2,}", " ", md)
    title = md.splitlines()[0]
    assert "apl_mnist" in title and "no published numbers" in title and "reference" not in title

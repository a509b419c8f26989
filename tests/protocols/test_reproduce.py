"""`lossbench reproduce`: --list, --dry-run, refusals, and a smoke-sized reproduction end to end."""

from __future__ import annotations

import json

import pytest

from lossbench.protocols.reproduce import main as reproduce_main
from lossbench.protocols.reproduce import plan, run_subdir
from lossbench.report.cli import main as report_main

# A preset cut down to seconds: CIFAR-shaped synthetic images, 2 epochs.
SMOKE = ["dataset=synthetic", "dataset.image_shape=[3,32,32]", "dataset.num_samples=240", "trainer.epochs=2"]


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    return err


def test_list_shows_every_preset(capsys):
    reproduce_main(["--list"])
    out = capsys.readouterr().out
    for name in ("apl_mnist", "apl_cifar10", "anl_cifar100", "sce_cifar10", "mukhoti_cifar10", "cifar10n"):
        assert name in out
    assert "84 (7 losses x 4 noise x 3 seeds)" in out and "none known" in out and "[README]" in out
    # marks are text, not rich styles (lower-case ones were swallowed as markup); one count per source
    assert "24 cells [figure], 24 cells [README]" in out and "1 cell [code]" in out


@pytest.mark.parametrize("argv, message", [
    (["apl_cifar"], "unknown preset 'apl_cifar'; known: anl_cifar10"),
    (["apl_mnist", "--losses", "ce,mae"], "--losses mae not in preset apl_mnist's grid; known: ce, gce, sce"),
    (["apl_mnist", "--noise", "asym40"], "--noise asym40 not in preset apl_mnist's grid; known: sym20"),
    (["apl_mnist", "--seeds", "7"], "--seeds 7 not in preset apl_mnist's grid; known: 0, 1, 2"),
    (["apl_mnist", "trainer.epoch=3"], "unknown config key 'trainer.epoch'"),
    ([], "name a preset"),
    # a grid key as an override would be ignored (--dry-run) or clash with the grid: refused (issue 27)
    (["apl_mnist", "loss=ce", "--dry-run", "--no-probe"],
     "loss=ce: the grid's losses are chosen with --losses"),
    (["apl_mnist", "noise=sym20"], "noise=sym20: the grid's noise settings are chosen with --noise"),
    (["apl_mnist", "seed=3", "--dry-run"], "seed=3: the grid's seeds are chosen with --seeds"),
    (["apl_mnist", "+loss=ce"], "+loss=ce: the grid's losses are chosen with --losses"),
])
def test_bad_input_is_refused_in_one_line_and_writes_nothing(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        reproduce_main([*argv, "--dir", str(tmp_path / "runs")])
    assert exc.value.code == 2
    assert message in _error(capsys)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "outputs").exists()


def test_run_directories_follow_the_preset_pattern():
    pattern = "${hydra.runtime.choices.loss}-${hydra.runtime.choices.noise}-s${seed}"
    assert run_subdir(pattern, "nce_rce", "sym80", "2") == "nce_rce-sym80-s2"


def test_dry_run_lists_runs_with_their_state(tmp_path, capsys):
    done = tmp_path / "runs" / "ce-sym80-s0"
    done.mkdir(parents=True)
    (done / "summary.json").write_text(json.dumps({"status": "completed", "epochs": 50}))
    partial = tmp_path / "runs" / "nce_rce-sym80-s0"
    partial.mkdir(parents=True)
    (partial / "checkpoint.pt").write_bytes(b"x")
    (partial / "metrics.jsonl").write_text('{"epoch": 0}\n{"epoch": 1}\n')
    runs, subset, _ = plan("apl_mnist", [], "ce,nce_rce", "sym80", "0,1", tmp_path / "runs")
    assert subset == {"loss": ["ce", "nce_rce"], "noise": ["sym80"], "seed": ["0", "1"]}
    states = {r.run_dir.name: (r.state, r.epochs_done) for r in runs}
    assert states == {"ce-sym80-s0": ("done", 50), "ce-sym80-s1": ("new", 0),
                      "nce_rce-sym80-s0": ("resumes", 2), "nce_rce-sym80-s1": ("new", 0)}
    reproduce_main(["apl_mnist", "--losses", "ce,nce_rce", "--noise", "sym80", "--seeds", "0,1",
                    "--dir", str(tmp_path / "runs"), "--dry-run", "--no-probe"])
    out = capsys.readouterr().out
    assert "1 done" in out and "1 resumes" in out and "2 new" in out
    assert "epochs to train: 148 (50 per run)" in out  # 50 + 50 + 48
    assert not (tmp_path / "runs" / "ce-sym80-s1").exists()


@pytest.mark.slow
def test_dry_run_estimates_the_cost_from_a_one_epoch_probe(tmp_path, capsys):
    reproduce_main(["apl_cifar10", "--losses", "ce", "--noise", "sym80", "--seeds", "0,1", "--dir",
                    str(tmp_path / "runs"), "--dry-run", *SMOKE])
    out = capsys.readouterr().out
    assert "probe: one epoch of loss=ce noise=sym80 took" in out and "on cpu" in out
    assert "epochs to train: 4 (2 per run)" in out
    # the runs first, then what is being probed, its progress, then the estimate
    assert (out.index("ce-sym80-s1") < out.index("probing the cost: one epoch of loss=ce noise=sym80 seed=0")
            < out.index("  epoch 1/1") < out.index("probe: one epoch"))
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_smoke_reproduce_end_to_end_then_report_against(tmp_path, cli, capsys):
    """apl_cifar10 cut down (synthetic CIFAR-shaped data, 2 epochs): the runs land in their directories,
    the comparison with the published numbers is printed, and the runs count as done afterwards.
    About 20 s of CPU (one subprocess)."""
    argv = ["reproduce", "apl_cifar10", "--losses", "ce,nce_rce", "--noise", "sym80", "--seeds", "0",
            "--dir", str(tmp_path / "runs"), *SMOKE, "trainer.progress=none"]
    proc = cli(*argv, cwd=tmp_path, env={"COLUMNS": "200"})
    for name in ("ce-sym80-s0", "nce_rce-sym80-s0"):
        summary = json.loads((tmp_path / "runs" / name / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["protocol"] == "apl_cifar10"
        assert summary["config"]["trainer"]["epochs"] == 2
    out = proc.stdout
    assert "19.74 [2nd]" in out and "54.99 [2nd]" in out and "NCE+RCE beats CE at sym 0.8" in out
    assert "deviate from the preset" in out.replace("\n", " ")
    reproduce_main(["apl_cifar10", "--losses", "ce,nce_rce", "--noise", "sym80", "--seeds", "0", "--dir",
                    str(tmp_path / "runs"), "--dry-run", *SMOKE])   # a second call would skip both
    assert "2 done" in capsys.readouterr().out
    md = tmp_path / "against.md"
    report_main([str(tmp_path / "runs"), "--against", "apl_cifar10", "--out", str(md)])
    text = md.read_text()
    ce = json.loads((tmp_path / "runs" / "ce-sym80-s0" / "summary.json").read_text())["test_acc"] * 100
    assert f"{ce:.2f} (1)" in text and f"{ce - 19.74:+.2f}" in text


def test_dry_run_without_the_data_lists_the_runs_then_says_the_estimate_needs_the_data(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    reproduce_main(["apl_mnist", "--losses", "ce", "--noise", "sym80", "--seeds", "0,1", "--dir",
                    str(tmp_path / "runs"), "--dry-run", f"data_dir={tmp_path / 'empty'}"])
    out = capsys.readouterr().out
    assert (out.index("ce-sym80-s0") < out.index("epochs to train: 100")
            < out.index("the cost estimate needs the data"))
    assert "train-images-idx3-ubyte" in out and "probe:" not in out
    assert not (tmp_path / "runs").exists()


def test_a_reproduction_without_the_data_is_refused_before_any_run(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exc:
        reproduce_main(["apl_mnist", "--losses", "ce", "--noise", "sym80", "--seeds", "0", "--dir",
                        str(tmp_path / "runs"), f"data_dir={tmp_path / 'empty'}"])
    assert exc.value.code == 2 and "missing: train-images-idx3-ubyte" in _error(capsys)
    assert not (tmp_path / "runs").exists()


def test_reproduce_ends_as_run_m_does_when_every_job_failed(tmp_path, cli):
    """Every job fails (its data files are empty, so reading them fails in the job): the sweep's closing
    line, then exit status 1, not 0."""
    raw = tmp_path / "empty" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1"):
        (raw / f"{name}-ubyte").write_bytes(b"")
    proc = cli("reproduce", "apl_mnist", "--losses", "ce", "--noise", "sym80", "--seeds", "0", "--no-report",
               "--dir", str(tmp_path / "runs"), f"data_dir={tmp_path / 'empty'}", "trainer.progress=none",
               cwd=tmp_path, check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    [closing] = [ln for ln in proc.stderr.splitlines() if ln.startswith("lossbench: sweep ")]
    assert "1 jobs: 0 completed" in closing and "1 failed: " in closing
    assert (tmp_path / "runs" / "ce-sym80-s0" / "failure.json").is_file()

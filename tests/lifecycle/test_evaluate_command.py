"""Saved weights and `lossbench evaluate`: the summary's evaluation metrics again, exactly, no training."""

from __future__ import annotations

import json

import pytest

from lossbench.core.io import read_jsonl
from lossbench.lifecycle.evaluate_command import comparison, evaluate_run, main


@pytest.fixture(scope="module")
def trained(cli_session, tmp_path_factory):
    """One short run that keeps both weight files."""
    root = tmp_path_factory.mktemp("evaluate")
    out = root / "run"
    proc = cli_session("run", f"hydra.run.dir={out}", "trainer.progress=plain", "trainer.epochs=3",
                       "model.hidden=[16]", "noise=sym40", "trainer.save_weights=both", cwd=root)
    return out, json.loads((out / "summary.json").read_text()), proc


def test_run_keeps_both_weight_files_and_records_threads(trained):
    out, summary, _ = trained
    assert (out / "model_final.pt").is_file() and (out / "model_best.pt").is_file()
    assert not (out / "checkpoint.pt").exists()
    assert summary["weights_final"] == "model_final.pt" and summary["weights_best"] == "model_best.pt"
    assert 1 <= summary["weights_best_epoch"] <= 3
    prov = summary["provenance"]
    assert prov["threads_setting"] == "auto" and prov["num_threads"] == 1
    assert "small model" in prov["threads_reason"]


def test_epochs_are_numbered_from_one_everywhere(trained):
    out, summary, proc = trained
    assert [r["epoch"] for r in read_jsonl(out / "metrics.jsonl")] == [1, 2, 3]
    assert summary["epochs"] == 3
    best = [r for r in read_jsonl(out / "metrics.jsonl") if r["epoch"] == summary["weights_best_epoch"]]
    assert best and best[0]["val_acc"] == max(r["val_acc"] for r in read_jsonl(out / "metrics.jsonl"))
    log = (out / "run.log").read_text()
    for k in (1, 2, 3):
        assert f"epoch {k}/3  loss" in proc.stdout + proc.stderr and f"epoch {k}/3  loss" in log
    assert "epoch 0/" not in log and "epoch 4/" not in log


def test_evaluate_reproduces_every_summary_metric_exactly(trained):
    out, summary, _ = trained
    result = evaluate_run(out)
    metrics = result["metrics"]
    assert "test_acc" in metrics and "test_nll" in metrics
    rows, same, compared = comparison(metrics, summary)
    timings = [r for r in rows if r[3] == "timing"]
    assert timings and all("seconds" in r[0] for r in timings)  # fit times: measured, not compared
    assert compared == len(metrics) - len(timings)  # every other evaluation figure is in the summary ...
    assert same == compared, [r for r in rows if r[3] != "identical"]  # ... and equal to it, bit for bit


def test_evaluate_best_weights_matches_the_selected_epoch(trained):
    out, summary, _ = trained
    result = evaluate_run(out, weights="best")
    [record] = [r for r in read_jsonl(out / "metrics.jsonl") if r["epoch"] == summary["weights_best_epoch"]]
    assert result["reference"] == record
    assert result["metrics"]["test_acc"] == record["test_acc"]
    assert result["metrics"]["val_acc"] == record["val_acc"]


def test_overrides_change_the_recorded_config(trained):
    out, summary, _ = trained
    clean_val = evaluate_run(out, ["noise=clean"])["metrics"]  # a config group, as `run` takes it
    assert clean_val["test_acc"] == summary["test_acc"]  # test labels are never noisy
    assert clean_val["val_acc"] != summary["val_acc"]  # validation labels are now the clean ones


def test_cli_checks_and_writes_json(trained, cli, tmp_path):
    out, summary, _ = trained
    proc = cli("evaluate", str(out), "--check", "--out", str(tmp_path / "ev.json"), cwd=tmp_path)
    assert "identical" in proc.stdout
    assert "figures identical to the run's own" in proc.stderr
    written = json.loads((tmp_path / "ev.json").read_text())
    assert written["test_acc"] == summary["test_acc"] and written["weights"].endswith("model_final.pt")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}"], "does not exist"),
        (["{run}", "trainer.nope=1"], "unknown config key 'trainer.nope'"),
        (["{run}", "loss=fcoal"], "unknown loss 'fcoal'; known: "),
        (["{run}", "seed=0,1"], "one value per key"),
        (["{bare}"], "model_final.pt not found: the run kept no final weights"),
        (["{run}", "loss=legendretron"], "loss_final.pt not found: loss 'legendretron' predicts through"),
        # tracebacks before (issue 27)
        (["{run}", "noise=sym"], "noise.rate has no value: noise=sym has no default for it"),
        (["{truncated}"], "config.yaml is not valid YAML"),
        (["{mnist}", "data_dir={missing}"], "mnist reads train-images-idx3-ubyte"),
        (["{run}", "--out", "{folder}"], "is a folder; name the JSON file to write"),
        (["{run}", "hydra.run.dir=\u00e9"], "quote it"),
    ],
)
def test_bad_input_is_one_line(trained, tmp_path, capsys, args, message):
    import shutil

    import yaml

    out, _, _ = trained
    bare, truncated, mnist = tmp_path / "bare", tmp_path / "truncated", tmp_path / "mnist"
    for copy in (bare, truncated, mnist):
        shutil.copytree(out, copy)
    (bare / "model_final.pt").unlink()
    text = (truncated / ".hydra" / "config.yaml").read_text()
    (truncated / ".hydra" / "config.yaml").write_text(text[: text.index("model:") + 9] + "\n  - [")
    config = yaml.safe_load((mnist / ".hydra" / "config.yaml").read_text())
    config["dataset"] = {"_target_": "lossbench.data.vision.mnist", "data_dir": "${data_dir}",
                         "download": False, "val_size": 0.1, "split_seed": 0, "augment": None}
    (mnist / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    hydra = yaml.safe_load((mnist / ".hydra" / "hydra.yaml").read_text())
    hydra["hydra"]["runtime"]["choices"]["dataset"] = "mnist"
    (mnist / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    paths = {"run": str(out), "missing": str(tmp_path / "nowhere"), "bare": str(bare),
             "truncated": str(truncated), "mnist": str(mnist), "folder": str(tmp_path)}
    with pytest.raises(SystemExit) as exit_info:
        main([a.format(**paths) for a in args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lossbench: error: ") and message in err[0]


def test_a_learned_link_is_saved_and_evaluated_with_its_loss(cli, tmp_path):
    """LegendreTron predicts through its own parameters: loss_final.pt / loss_best.pt hold them, from
    the same epochs as the model's files, and `evaluate` reproduces the summary with them."""
    out = tmp_path / "lt"
    cli("run", f"hydra.run.dir={out}", "loss=legendretron", "trainer.epochs=2", "model.hidden=[16]",
        "trainer.save_weights=both", "trainer.progress=none", cwd=tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["loss_weights_final"] == "loss_final.pt" and summary["loss_weights_best"] == "loss_best.pt"
    assert (out / "loss_final.pt").is_file() and (out / "loss_best.pt").is_file()
    rows, same, compared = comparison(evaluate_run(out)["metrics"], summary)
    assert compared > 5 and same == compared, [r for r in rows if r[3] == "differs"]
    (out / "loss_final.pt").unlink()  # the model alone predicts differently: refused, not guessed
    with pytest.raises(Exception, match="loss_final.pt not found"):
        evaluate_run(out)


def test_a_sweep_folder_is_named_as_one_and_its_runs_listed(trained, tmp_path, capsys):
    import shutil

    out, _, _ = trained
    for name in ("loss=ce", "loss=gce"):
        shutil.copytree(out, tmp_path / "sweep" / name)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "sweep")])
    [line] = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2
    assert "is a sweep folder of 2 runs" in line and "loss=ce, loss=gce" in line
    assert f"lossbench evaluate {tmp_path / 'sweep' / 'loss=ce'}" in line


@pytest.mark.parametrize(("kept", "asked", "advice"), [
    ("final", "best", "trainer.save_weights=best (or both)"),
    ("best", "final", "trainer.save_weights=final (or both)"),
    ("none", "final", "trainer.save_weights=final (or both)"),
])
def test_missing_weights_name_the_setting_that_would_have_kept_them(trained, tmp_path, capsys, kept, asked,
                                                                    advice):
    import shutil

    out, _, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    (run / f"model_{asked}.pt").unlink()
    summary = json.loads((run / "summary.json").read_text())
    summary["config"]["trainer"]["save_weights"] = kept
    (run / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(SystemExit):
        main([str(run), "--weights", asked])
    [line] = capsys.readouterr().err.strip().splitlines()
    assert f"ran with trainer.save_weights={kept}" in line and advice in line


def test_an_unfinished_run_says_its_weights_come_at_its_end(trained, tmp_path, capsys):
    import shutil

    out, _, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    (run / "model_final.pt").unlink()
    (run / "summary.json").unlink()
    with pytest.raises(SystemExit):
        main([str(run)])
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "has not finished" in line and "resume it" in line


def test_timing_rows_are_not_counted_as_missing_from_the_record(trained, capsys):
    out, summary, _ = trained
    main([str(out)])
    said = capsys.readouterr().err
    rows, same, compared = comparison(evaluate_run(out)["metrics"], summary)
    timings = sum(r[3] == "timing" for r in rows)
    assert timings > 0
    assert f"{same} of {compared} figures identical to the run's own; 0 not in the run's record; " \
           f"{timings} timings (measured, not compared)" in said


def test_evaluate_refits_the_runs_own_calibrators(cli, tmp_path):
    """The run's calibrator choice (here temperature and vector scaling) is evaluated again, not the
    default one: every figure, the vector-scaled ones included, equals the summary's."""
    out = tmp_path / "cal"
    cli("run", f"hydra.run.dir={out}", "trainer.epochs=1", "model.hidden=[16]", "trainer.progress=none",
        "calibrator=[temperature,vector]", cwd=tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    metrics = evaluate_run(out)["metrics"]
    assert metrics["calibrators"] == summary["calibrators"] == ["ts", "vs"]
    rows, same, compared = comparison(metrics, summary)
    assert same == compared, [r for r in rows if r[3] == "differs"]


# Module paths before the run's lifecycle moved into lossbench/lifecycle and lossbench/core: a run
# folder written then records the old ones in .hydra/hydra.yaml (the sweep callback, the log handler).
OLD_PATHS = {"lossbench.lifecycle.callbacks": "lossbench.callbacks", "lossbench.core.io": "lossbench.io"}


def test_a_run_folder_written_before_the_modules_moved_still_evaluates(trained, tmp_path):
    """evaluate takes only group choices and plain values from a run folder and compares a recorded
    ``_target_`` with lossbench's own option: the job config names no module that moved (plug-ins stay
    where they were), so an old folder's figures come back identical without any mapping."""
    import shutil

    out, summary, _ = trained
    old = tmp_path / "old"
    shutil.copytree(out, old)
    hydra = old / ".hydra" / "hydra.yaml"
    text = hydra.read_text()
    for new, before in OLD_PATHS.items():
        assert f"{new}." in text
        text = text.replace(f"{new}.", f"{before}.")
    hydra.write_text(text)
    config = (old / ".hydra" / "config.yaml").read_text()
    assert "lossbench.lifecycle" not in config and "lossbench.core" not in config
    rows, same, compared = comparison(evaluate_run(old)["metrics"], summary)
    assert same == compared > 0

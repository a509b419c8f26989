"""Sweep run folders named by the settings the sweep varies, safe for any value (issue 26, item 8)."""

from __future__ import annotations

import json

from lossbench.lifecycle.naming import MAX_NAME, constant_keys, run_dirname


def test_plain_overrides_are_the_name():
    assert run_dirname("loss=gce,noise=sym60,seed=1", 3) == "loss=gce,noise=sym60,seed=1"
    assert run_dirname("", 3) == "3"  # nothing varies: the job number


def test_any_value_stays_one_folder_and_two_overrides_never_share_a_name():
    name = run_dirname("data_dir=../../etc", 0)
    assert "/" not in name and name == "data_dir=..%2F..%2Fetc"
    assert run_dirname("x=a/b", 0) != run_dirname("x=a%2Fb", 0)  # % is escaped too
    assert run_dirname("model.hidden=[16,16]", 0) == "model.hidden=%5B16,16%5D"
    assert run_dirname("tag=é ü", 0) == "tag=%C3%A9%20%C3%BC"
    assert run_dirname("..", 0) != ".." and not run_dirname("-x=1", 0).startswith("-")


def test_long_names_are_capped_and_stay_unique():
    a = run_dirname("optim.lr=" + "1" * 300, 0)
    b = run_dirname("optim.lr=" + "1" * 299 + "2", 0)
    assert len(a) == len(b) == MAX_NAME and a != b


def test_only_the_settings_that_vary_name_the_folder():
    overrides = ["loss=ce,gce", "seed=0", "trainer.epochs=2", "+experiment=x", "hydra.verbose=true"]
    assert constant_keys(overrides) == ["experiment", "seed", "trainer.epochs"]


def test_a_sweep_names_its_folders_by_what_varies_and_the_numbers_are_one_setting_away(cli, tmp_path):
    common = ["trainer.epochs=1", "model.hidden=[8]", "trainer.progress=none"]
    cli("run", "-m", "loss=ce,gce", "data_dir=a/b,c", *common, f"hydra.sweep.dir={tmp_path / 'named'}",
        cwd=tmp_path)
    names = sorted(p.name for p in (tmp_path / "named").iterdir() if p.is_dir())
    assert names == ["data_dir=a%2Fb,loss=ce", "data_dir=a%2Fb,loss=gce", "data_dir=c,loss=ce",
                     "data_dir=c,loss=gce"]
    summary = json.loads((tmp_path / "named" / "data_dir=c,loss=gce" / "summary.json").read_text())
    assert summary["loss"] == "gce" and summary["config"]["data_dir"] == "c"
    cli("run", "-m", "loss=ce,gce", *common, "hydra.sweep.subdir=${hydra.job.num}",
        f"hydra.sweep.dir={tmp_path / 'numbered'}", cwd=tmp_path)
    assert sorted(p.name for p in (tmp_path / "numbered").iterdir() if p.is_dir()) == ["0", "1"]


def test_the_default_sweeper_composes_each_job_once_when_lossbench_checked_them_all(monkeypatch, tmp_path):
    """Hydra's basic sweeper composes every job before launching it (its launcher composes it again);
    the precheck has composed and validated the same combinations already (issue 30)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.plugins.sweeper import Sweeper

    from lossbench.cli import main

    monkeypatch.chdir(tmp_path)
    validated = []
    monkeypatch.setattr(Sweeper, "validate_batch_is_legal", lambda self, batch: validated.append(len(batch)))
    common = ["trainer.epochs=1", "model.hidden=[8]", "trainer.progress=none"]

    def sweep(*args):
        try:
            main(["run", "-m", *common, *args])
        finally:
            GlobalHydra.instance().clear()

    sweep("seed=0,1", f"hydra.sweep.dir={tmp_path / 'a'}")
    assert validated == [] and len(list((tmp_path / "a").glob("*/summary.json"))) == 2


def test_the_sweeper_validates_what_the_check_did_not_enumerate(monkeypatch):
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    from hydra_plugins.lossbench_sweeper.sweeper import CheckedBasicSweeper
    from lossbench.lifecycle import precheck

    monkeypatch.setattr(BasicSweeper, "sweep", lambda self, arguments: self._checked)
    assert precheck.check(["seed=0,1", "trainer.epochs=1"], multirun=True).problem is None
    checked = CheckedBasicSweeper(max_batch_size=None, params=None)
    assert checked.sweep(["seed=0,1", "trainer.epochs=1"]) is True
    assert checked.sweep(["seed=0,1,2", "trainer.epochs=1"]) is False  # not what was checked
    with_params = CheckedBasicSweeper(max_batch_size=None, params={"loss": "ce,gce"})  # a preset's grid
    assert with_params.sweep(["seed=0,1", "trainer.epochs=1"]) is False
    assert precheck.check(["seed=range(0,2)"], multirun=True).problem is None
    assert checked.sweep(["seed=range(0,2)"]) is (precheck._VALIDATED is not None)

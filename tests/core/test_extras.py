"""Extras: the core install stays light, and a choice whose extra is missing stops with the pip command."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lossbench.core import extras

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def nothing_installed(monkeypatch):
    monkeypatch.setattr(extras, "installed", lambda extra: False)


@pytest.mark.parametrize(
    ("overrides", "what", "package"),
    [
        (["-m", "hydra/launcher=joblib", "loss=ce,gce"], "hydra/launcher=joblib", "hydra-joblib-launcher"),
        (["hydra/launcher=submitit_local"], "hydra/launcher=submitit_local", "hydra-submitit-launcher"),
        (["hydra/launcher=slurm"], "hydra/launcher=slurm", "hydra-submitit-launcher"),
        (["hydra/sweeper=optuna"], "hydra/sweeper=optuna", "hydra-optuna-sweeper"),
        (["+experiment=optuna_gce"], "hydra/sweeper=optuna", "hydra-optuna-sweeper"),  # through the preset
        (["model=mlp,timm"], "model=timm", "timm"),
    ],
)
def test_missing_extra_names_the_pip_command(nothing_installed, overrides, what, package):
    message = extras.missing_extra(overrides)
    assert message.startswith(f"{what} needs the optional package {package} ")
    assert f"pip install '{package}>=" in message and "\n" not in message


def test_nothing_to_say_when_installed_or_not_needed(nothing_installed, monkeypatch):
    assert extras.missing_extra(["loss=focal", "model=cnn4", "+experiment=mnist_quick"]) is None
    monkeypatch.setattr(extras, "installed", lambda extra: True)
    assert extras.missing_extra(["hydra/launcher=joblib", "model=timm"]) is None


@pytest.mark.parametrize(("args", "what"), [
    (["-m", "hydra/launcher=joblib", "seed=0,1"], "hydra/launcher=joblib"),
    (["-m", "+experiment=optuna_gce"], "hydra/sweeper=optuna"),
    (["model=timm"], "model=timm"),
])
def test_run_refuses_before_anything_starts(nothing_installed, capsys, tmp_path, args, what):
    from lossbench.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["run", f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}", *args])
    assert exit_info.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"lossbench: error: {what} needs") and "pip install" in line
    assert not (tmp_path / "run").exists() and not (tmp_path / "sweep").exists()


def test_timm_model_without_timm_is_a_one_line_config_error(nothing_installed):
    from lossbench.core.errors import ConfigError
    from lossbench.models.timm_model import TimmModel

    with pytest.raises(ConfigError, match=r"model=timm needs the optional package timm .*pip install 'timm"):
        TimmModel((3, 32, 32), 10)


def test_pyproject_extras_match_the_hints():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    core = {req.split(">")[0].split("<")[0].split("=")[0] for req in project["dependencies"]}
    for extra, (_, requirement) in extras.EXTRAS.items():
        assert requirement in optional[extra], extra
        # torchattacks pins requests~=2.25.1; cut-cross-entropy needs triton (a GPU compiler) for what
        # loss.backend=chunked does without it; the tests of both skip without them
        if extra not in ("attacks", "cce"):
            assert requirement in optional["test"], f"CI (.[test]) must cover the {extra} extra"
        assert requirement.split(">")[0] not in core
    assert "torchmetrics" not in core and any(r.startswith("torchmetrics") for r in optional["test"])
    assert {"hydra-core", "omegaconf", "torch", "torchvision", "wandb", "rich", "pandas"} <= core
    assert set(extras.NEEDS.values()) <= set(extras.EXTRAS)


def test_optuna_and_alembic_are_quiet_unless_verbose():
    pytest.importorskip("optuna")
    import optuna

    from lossbench.cli import quiet_libraries

    alembic = logging.getLogger("alembic")
    before = alembic.level, optuna.logging.get_verbosity()
    try:
        alembic.setLevel(logging.NOTSET)
        optuna.logging.set_verbosity(logging.INFO)
        quiet_libraries(["hydra/sweeper=optuna", "verbose=true"])
        assert alembic.level == logging.NOTSET and optuna.logging.get_verbosity() == logging.INFO
        quiet_libraries(["+experiment=optuna_gce"])
        assert alembic.level == logging.WARNING and optuna.logging.get_verbosity() == logging.WARNING
    finally:
        alembic.setLevel(before[0])
        optuna.logging.set_verbosity(before[1])

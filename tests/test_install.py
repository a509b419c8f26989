"""Installed as a user installs it: a built wheel runs, and its launchers work, from any folder;
a researcher's own package brings its loss and model through `_target_` and `hydra.searchpath`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = ("trainer.epochs=1", "model.hidden=[8]", "trainer.progress=none")


def _run(args: list[str], cwd: Path, pythonpath: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline",
           "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} (in {cwd}): {proc.returncode}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel_install(tmp_path_factory) -> Path:
    """lossbench built as a wheel and installed (not editable) into a folder of its own."""
    root = tmp_path_factory.mktemp("install")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # build from a copy of the tracked files, so the checkout gets no build/ or egg-info
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    source = root / "src"
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((REPO / name).read_bytes())
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "wheel"), str(source)]
    subprocess.run(build, check=True, capture_output=True, timeout=300)
    [wheel] = (root / "wheel").glob("lossbench-*.whl")
    target = root / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    assert (target / "lossbench" / "conf" / "config.yaml").is_file()  # the config tree ships in the wheel
    return target


@pytest.fixture(scope="module")
def empty_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("empty")


@pytest.mark.slow
@pytest.mark.parametrize("where", ["repository root", "empty folder"])
def test_installed_wheel_runs_and_launches_from_any_folder(wheel_install, empty_folder, tmp_path, where):
    cwd = REPO if where == "repository root" else empty_folder
    site = str(wheel_install)
    found = _run([sys.executable, "-c", "import lossbench; print(lossbench.__file__)"], cwd, site).stdout
    # from the repository root `python -m` finds the source folder first (the case), else the wheel
    assert Path(found.strip()).is_relative_to(REPO if where == "repository root" else wheel_install)
    out = tmp_path / "single"
    _run([sys.executable, "-m", "lossbench", "run", f"hydra.run.dir={out}", *TINY], cwd, site)
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"
    script = str(wheel_install / "bin" / "lossbench")  # the installed command, whatever the folder
    for launcher, extra in (("joblib", ["hydra.launcher.n_jobs=2", "seed=0"]),
                            ("submitit_local", ["hydra.launcher.timeout_min=5", "seed=0"])):
        sweep = tmp_path / launcher
        _run([script, "run", "-m", f"hydra/launcher={launcher}", *extra, *TINY, f"hydra.sweep.dir={sweep}"],
             cwd, site)
        assert json.loads((sweep / "0" / "summary.json").read_text())["status"] == "completed", launcher
    assert not list(empty_folder.iterdir())  # every output went where it was told


USER_LOSS = '''"""A researcher's own loss and model, outside lossbench."""
from torch import nn

from lossbench.losses.base import Loss
from lossbench.models.base import Classifier


class PowerLoss(Loss):
    """(1 - p_y)^a."""

    family = "robust"
    paper = "Someone 2026"

    def __init__(self, a: float = 2.0) -> None:
        super().__init__()
        self.a = a

    def compute(self, logits, target):
        p_y = logits.softmax(1).gather(1, target[:, None]).squeeze(1)
        return (1 - p_y) ** self.a


class TinyNet(Classifier):
    def __init__(self, input_shape, num_classes, width: int = 8) -> None:
        size = 1
        for d in input_shape:
            size *= d
        super().__init__(nn.Sequential(nn.Flatten(), nn.Linear(size, width), nn.ReLU()), width, num_classes)
'''


@pytest.fixture
def user_package(tmp_path) -> Path:
    """A package `mywork` with its own classes and YAML files in `mywork/conf/{loss,model}`."""
    root = tmp_path / "user"
    (root / "mywork" / "conf" / "loss").mkdir(parents=True)
    (root / "mywork" / "conf" / "model").mkdir(parents=True)
    (root / "mywork" / "__init__.py").write_text(USER_LOSS)
    (root / "mywork" / "conf" / "__init__.py").write_text("")
    (root / "mywork" / "conf" / "loss" / "power.yaml").write_text(
        "# (1 - p_y)^a, my own loss.\n_target_: mywork.PowerLoss\na: 1.5\n")
    (root / "mywork" / "conf" / "model" / "tiny.yaml").write_text(
        "# one hidden layer\n_target_: mywork.TinyNet\n_partial_: true\nwidth: 12\n")
    return root


def test_user_package_loss_and_model_through_the_search_path(user_package, tmp_path):
    out = tmp_path / "run"
    _run([sys.executable, "-m", "lossbench", "run", "hydra.searchpath=[pkg://mywork.conf]", "loss=power",
          "model=tiny", "loss.a=2.5", "trainer.epochs=2", "trainer.progress=none", f"hydra.run.dir={out}"],
         tmp_path, os.pathsep.join([str(user_package), str(REPO)]))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["loss"] == "power" and summary["model"] == "tiny"
    assert summary["loss_family"] == "robust"
    # loss.reduction is every loss's (the training step's reduction), recorded with the user's keys
    assert summary["config"]["loss"] == {"_target_": "mywork.PowerLoss", "a": 2.5, "reduction": "mean"}
    assert summary["config"]["model"]["width"] == 12


def test_user_options_are_checked_like_lossbench_options(user_package, monkeypatch):
    from lossbench.lifecycle.precheck import check_overrides

    monkeypatch.syspath_prepend(str(user_package))
    search = "hydra.searchpath=[pkg://mywork.conf]"
    assert check_overrides([search, "loss=power", "model=tiny"]) is None
    problem = check_overrides([search, "loss=powr"])
    assert problem.startswith("unknown loss 'powr'; closest: power")
    assert "; known: " in problem and "gce" in problem
    assert check_overrides(["loss=power"]).startswith("unknown loss 'power'")  # not without the search path
    folder = f"hydra.searchpath=[file://{user_package / 'mywork' / 'conf'}]"
    assert check_overrides([folder, "loss=power"]) is None  # a plain folder works too

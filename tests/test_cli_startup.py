"""The command's first second: messages that lead the right way, refusals before the heavy imports,
and a default run that imports (and warns about) nothing it does not use (issues 26 and 30)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lossbench.cli import main

REPO = Path(__file__).resolve().parents[1]


def _refused(capsys, monkeypatch, tmp_path, *args: str) -> str:
    """The one error line of `lossbench run ARGS` (exit status 2), run in this process."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["run", f"hydra.run.dir={tmp_path}/out", *args])
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert exit_info.value.code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("lossbench: error: "), captured.err
    assert not (tmp_path / "out").exists()
    return lines[0]


def test_several_values_without_m_say_to_add_m(capsys, monkeypatch, tmp_path):
    line = _refused(capsys, monkeypatch, tmp_path, "loss=ce,gce")
    assert "loss=ce,gce" in line and "-m" in line and "sweep" in line


@pytest.mark.parametrize(("override", "meant"), [("los=gce", "loss"), ("nosie=sym60", "noise"),
                                                 ("trainer.epoch=3", "trainer.epochs"),
                                                 ("sed=1", "seed")])
def test_a_misspelt_key_gets_did_you_mean_and_no_plus_hint(capsys, monkeypatch, tmp_path, override, meant):
    line = _refused(capsys, monkeypatch, tmp_path, override)
    assert f"did you mean {meant}?" in line
    assert "+" not in line  # +los=VALUE would train a default run with a stray key


@pytest.mark.parametrize(("override", "first"), [("loss=gcee", "gce"), ("loss=GCE", "gce"),
                                                 ("noise=sym06", "sym60"), ("dataset=mnits", "mnist")])
def test_a_misspelt_name_gets_the_closest_names_first(capsys, monkeypatch, tmp_path, override, first):
    line = _refused(capsys, monkeypatch, tmp_path, override)
    group, _, name = override.partition("=")
    assert line.startswith(f"lossbench: error: unknown {group} '{name}'; closest: {first}")
    assert "; known: " in line


# Refusals of values: each case, in one fresh interpreter, must be refused before torch is imported.
TORCH_FREE = [
    ["trainer.epochs=0"],
    ["trainer.batch_size=-8"],
    ["noise=sym60", "noise.rate=1.5"],
    ["trainer.device=tpu"],
    ["dataset=mnist", "data_dir={tmp}/empty"],
    ["dataset=cifar10", "data_dir={tmp}/empty"],
    ["-m", "trainer.epochs=2,0"],
]
NO_CUDA_DEVICE = ["trainer.device=cuda"]

PROBE = textwrap.dedent("""
    import json, sys
    from lossbench.cli import main
    out = []
    for args in json.loads(sys.argv[1]):
        try:
            main(["run", *args])
            code = 0
        except SystemExit as exc:
            code = exc.code
        heavy = sorted(m for m in ("torch", "torch._dynamo", "torchvision", "relplot", "sklearn",
                                   "matplotlib", "scipy", "pandas") if m in sys.modules)
        out.append({"args": args, "code": code, "imported": heavy})
    print(json.dumps(out))
""")


def _probe(cases: list[list[str]], tmp_path: Path) -> list[dict]:
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(cases)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_value_refusals_come_before_torch_is_imported(tmp_path):
    (tmp_path / "empty").mkdir()
    cases = [[a.format(tmp=tmp_path) for a in case] + [f"hydra.run.dir={tmp_path}/out",
                                                       f"hydra.sweep.dir={tmp_path}/sweep"]
             for case in TORCH_FREE]
    if not any(Path(p).exists() for p in ("/dev/nvidia0", "/dev/kfd", "/dev/dxg", "/proc/driver/nvidia")):
        cases.append([*NO_CUDA_DEVICE, f"hydra.run.dir={tmp_path}/out"])
    for result in _probe(cases, tmp_path):
        assert result["code"] == 2, result
        assert result["imported"] == [], result
    assert not (tmp_path / "out").exists() and not (tmp_path / "sweep").exists()


def test_a_loss_value_refusal_imports_torch_and_nothing_heavier(tmp_path):
    [result] = _probe([["loss=gce", "loss.q=2", f"hydra.run.dir={tmp_path}/out"]], tmp_path)
    assert result["code"] == 2 and result["imported"] == ["torch"], result


def test_a_data_dir_one_level_too_deep_is_recognised(capsys, monkeypatch, tmp_path, shared_data):
    line = _refused(capsys, monkeypatch, tmp_path, "dataset=mnist", f"data_dir={shared_data / 'MNIST'}")
    assert "itself holds raw/" in line and f"data_dir={shared_data}" in line


DEFAULT_RUN = textwrap.dedent("""
    import json, logging, sys, warnings
    warnings.simplefilter("always")
    from lossbench.cli import main
    try:
        main(sys.argv[1:])
    except SystemExit as exc:
        assert not exc.code, exc.code
    print(json.dumps(sorted(m for m in sys.modules
                            if m.split(".")[0] in ("relplot", "sklearn", "matplotlib", "pandas",
                                                   "torchvision", "wandb", "scipy"))))
""")


def test_the_default_run_warns_about_nothing_and_imports_only_what_it_uses(tmp_path):
    """No SmoothECE (so no relplot, scikit-learn, matplotlib) unless asked for, no scipy (temperature
    scaling's search is lossbench's own); no warning either way."""
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0", "PATH": "/usr/bin:/bin"}
    args = ["run", f"hydra.run.dir={tmp_path}/run", "trainer.epochs=2", "trainer.progress=none"]
    proc = subprocess.run([sys.executable, "-c", DEFAULT_RUN, *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == []
    noise = [ln for ln in proc.stderr.splitlines() if "WARNING" in ln or "Warning" in ln]
    assert noise == [], proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "test_smece" not in summary and summary["config"]["smooth_ece"] is False


def test_smooth_ece_true_records_smooth_ece(run_once):
    _, summary, _ = run_once("trainer.epochs=1", "smooth_ece=true")
    assert 0 <= summary["test_smece"] <= 1 and "smooth" in summary["test_reliability"]


def test_the_torch_free_tables_match_what_they_stand_for():
    """validation.PRECISION_NAMES and data.files.FILES are known without torch; the trainer and
    torchvision are the truth they copy."""
    import torchvision.datasets as tvd

    from lossbench.core.dataset_files import FILES
    from lossbench.lifecycle.validation import PRECISION_NAMES
    from lossbench.train.trainer import PRECISIONS

    assert tuple(PRECISIONS) == PRECISION_NAMES
    for name, cls in (("cifar10", tvd.CIFAR10), ("cifar100", tvd.CIFAR100)):
        names = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
        assert FILES[name] == [f"{cls.base_folder}/{f}" for f in names]
    assert FILES["svhn"] == [tvd.SVHN.split_list[s][1] for s in ("train", "test")]
    assert FILES["mnist"][0] == "MNIST/raw/train-images-idx3-ubyte"


def test_m_may_come_after_an_override(cli, tmp_path):
    cli("run", "trainer.epochs=1", "model.hidden=[8]", "trainer.progress=none", "-m", "seed=0,1",
        f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()) == ["seed=0", "seed=1"]


def test_a_run_composes_its_config_twice_not_three_times(monkeypatch, tmp_path):
    """The precheck composes the config, Hydra composes it for the run; Hydra's own first composition
    (only to read hydra.mode, which the precheck has read) is skipped (issue 30)."""
    from hydra._internal.hydra import Hydra
    from hydra.core.global_hydra import GlobalHydra

    calls = []
    original = Hydra.compose_config

    def counted(self, *args, **kwargs):
        calls.append(kwargs.get("run_mode"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Hydra, "compose_config", counted)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["lossbench"])
    try:
        main(["run", f"hydra.run.dir={tmp_path / 'run'}", "trainer.epochs=1", "trainer.progress=none"])
    finally:
        GlobalHydra.instance().clear()
    assert len(calls) == 2 and (tmp_path / "run" / "summary.json").is_file()


def test_a_short_run_fsyncs_only_its_results(monkeypatch, tmp_path):
    """summary.json and the weights are fsynced; what every start writes again (.hydra/, noise.npz, the
    metrics file rebuilt from the checkpoint) and the checkpoints of short epochs are not (issue 30)."""
    import os

    from hydra.core.global_hydra import GlobalHydra

    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["lossbench"])
    try:
        main(["run", f"hydra.run.dir={tmp_path / 'run'}", "trainer.epochs=2", "trainer.progress=none"])
    finally:
        GlobalHydra.instance().clear()
    names = sorted(Path(p).name.split(".tmp")[0].lstrip(".").rsplit(".", 1)[0] for p in synced)
    assert names == ["model_final.pt", "summary.json"], synced

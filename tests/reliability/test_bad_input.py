"""Bad input, table-driven: exit status 2, exactly one line naming the key, the value and what is
allowed, no traceback, and no directory created or changed.

Most cases fail in the precheck, in process (a fraction of a second each); the few that can
only fail inside the job (missing data files) run the command in a subprocess.
"""

from __future__ import annotations

import pytest
import torch

from lossbench.cli import main

# (overrides, fragments the one error line must contain)
CASES = [
    # names, keys, grammar
    (["loss=fcoal"], ["unknown loss 'fcoal'; closest: focal; known: ", "gce"]),
    (["noise=sym99"], ["unknown noise 'sym99'; closest: ", "; known: ", "sym60"]),
    (["dataset=mnits"], ["unknown dataset 'mnits'; closest: mnist; known: ", "mnist"]),
    (["model=resnet9000"], ["unknown model 'resnet9000'; closest: resnet50", "; known: "]),
    (["reweight=bogus"], ["unknown reweight 'bogus'; known: ", "class_balanced"]),
    (["optim=sgdd"], ["unknown optim 'sgdd'; closest: sgd; known: adam, sgd"]),
    (["scheduler=steps"], ["unknown scheduler 'steps'; closest: step; known: cosine, exp_decay, multistep"]),
    (["logger=nope"], ["unknown logger 'nope'", "known: csv, local, tensorboard, wandb"]),
    (["+experiment=nope"], ["unknown experiment 'nope'; known: "]),
    (["loss="], ["unknown loss ''"]),
    (["-m", "loss=ce,fcoal"], ["unknown loss 'fcoal'"]),
    (["hydra/launcher=nope"], ["unknown hydra/launcher 'nope'; known: basic, joblib, packed, slurm"]),
    (["trainer.foo=1"], ["unknown config key 'trainer.foo'"]),
    (["loss.gamma=2"], ["unknown config key 'loss.gamma'"]),
    (["trainer.epochs=["], ["malformed override"]),
    (["=ce"], ["malformed override '=ce'", "key before '=' is empty"]),
    # values that are missing
    (["noise=sym"], ["noise.rate has no value", "noise=sym", "noise.rate=0.4"]),
    (["noise=custom"], ["noise.matrix has no value", "noise=custom", "noise.matrix=[["]),
    (["-m", "noise=sym,sym20"], ["noise.rate has no value", "no job was started"]),
    # types, from the schemas
    (["loss=gce", "loss.q=abc"], ["loss.q must be a number, got 'abc'"]),
    (["loss=focal", "loss.gamma=abc"], ["loss.gamma must be a number, got 'abc'"]),
    (["optim.lr=abc"], ["optim.lr must be a number > 0, got 'abc'"]),
    (["model.hidden=abc"], ["model.hidden must be a list of integers", "got 'abc'"]),
    (["model.hidden=[a,b]"], ["model.hidden must be a list of integers"]),
    (["model.dropout=abc"], ["model.dropout must be a number in [0, 1), got 'abc'"]),
    (["model.batch_norm=yes"], ["model.batch_norm must be true or false, got 'yes'"]),
    (["model=cnn4", "model.hidden=[3]"], ["model.hidden must be an integer, got [3]"]),
    (["seed=abc"], ["seed must be an integer >= 0, got 'abc'"]),
    (["seed=1.5"], ["seed must be an integer >= 0, got 1.5"]),
    (["seed=-1"], ["seed must be an integer >= 0, got -1"]),
    (["noise_seed=-1"], ["noise_seed must be an integer >= 0, got -1"]),
    (["objective=123"], ["objective must be a string, got 123"]),
    (["data_dir=[1,2]"], ["data_dir must be a string"]),
    (["dataset.split_seed=abc"], ["dataset.split_seed must be an integer >= 0, got 'abc'"]),
    (["trainer.epochs=abc"], ["trainer.epochs must be a positive integer, got 'abc'"]),
    (["trainer.epochs=2.5"], ["trainer.epochs must be a positive integer, got 2.5"]),
    (["trainer.batch_size=abc"], ["trainer.batch_size must be a positive integer, got 'abc'"]),
    (["trainer.deterministic=maybe"], ["trainer.deterministic must be true or false, got 'maybe'"]),
    (["trainer.channels_last=nope"], ["trainer.channels_last must be true or false, got 'nope'"]),
    (["trainer.compile=1"], ["trainer.compile must be true or false, got 1"]),
    (["trainer.force=maybe"], ["trainer.force must be true or false, got 'maybe'"]),
    (["trainer.grad_clip=abc"], ["trainer.grad_clip must be a number > 0 or null, got 'abc'"]),
    (["logger=wandb", "logger.tags=abc"], ["logger.tags must be a list of strings", "got 'abc'"]),
    (["noise=pair45", "noise.rate=abc"], ["noise.rate must be a number in [0, 1)", "got 'abc'"]),
    # ranges and choices
    (["trainer.progress=fancy"], ["trainer.progress must be one of auto, rich, plain, none", "got 'fancy'"]),
    (["logger=wandb", "logger.mode=bogus"], ["logger.mode must be one of online, offline,", "'bogus'"]),
    (["logger=wandb", "logger.init_timeout=-5"], ["logger.init_timeout must be a number of seconds", "-5"]),
    (["trainer.precision=64"], ["trainer.precision must be one of 32, bf16, 16-mixed, got 64"]),
    (["trainer.device=tpu"], ["trainer.device 'tpu'; known: auto, cpu, cuda"]),
    (["trainer.epochs=0"], ["trainer.epochs must be a positive integer, got 0"]),
    (["trainer.batch_size=-8"], ["trainer.batch_size must be a positive integer, got -8"]),
    (["trainer.eval_batch_size=0"], ["trainer.eval_batch_size must be a positive integer, got 0"]),
    (["trainer.checkpoint_every=-1"], ["trainer.checkpoint_every must be an integer >= 0", "got -1"]),
    (["trainer.grad_clip=-1"], ["trainer.grad_clip must be a number > 0 or null, got -1"]),
    (["trainer.l1=-0.1"], ["trainer.l1 must be a number >= 0, got -0.1"]),
    (["optim.lr=-0.1"], ["optim.lr must be a number > 0, got -0.1"]),
    (["optim.lr=0"], ["optim.lr must be a number > 0, got 0"]),
    (["optim.momentum=-1"], ["optim.momentum must be a number >= 0, got -1"]),
    (["optim.weight_decay=-1"], ["optim.weight_decay must be a number >= 0, got -1"]),
    (["optim=adam", "+optim.betas=[0.9,1.5]"], ["optim.betas must be two numbers in [0, 1)"]),
    (["scheduler.T_max=0"], ["scheduler.T_max must be an integer > 0, got 0"]),
    (["scheduler.eta_min=-1"], ["scheduler.eta_min must be a number >= 0, got -1"]),
    (["dataset.val_size=2.0"], ["dataset.val_size must be a fraction", "write 2, not 2.0", "got 2.0"]),
    (["dataset.val_size=1.0"], ["dataset.val_size must be a fraction", "got 1.0"]),
    (["dataset.val_size=-0.1"], ["dataset.val_size must be a fraction", "got -0.1"]),
    (["dataset.test_size=-0.5"], ["dataset.test_size must be a fraction of the dataset", "got -0.5"]),
    (["dataset.test_size=0"], ["dataset.test_size must be a fraction", "got 0"]),
    (["noise=sym60", "noise.rate=1.5"], ["noise.rate must be a number in [0, 1)", "got 1.5"]),
    (["noise=sym60", "noise.rate=-0.2"], ["noise.rate must be a number in [0, 1)", "got -0.2"]),
    (["noise=idn40", "noise.rate=2"], ["noise.rate must be a number in [0, 1)", "got 2"]),
    (["noise=sym60", "noise.rate=0.95"], ["rate 0.95 with 10 classes"]),
    (["noise=cifar10n_worst"], ["cifar10n_worst pairs only with dataset cifar10, got digits"]),
    (["noise=asym40", "dataset=synthetic"], ["no flip map for dataset 'synthetic'"]),
    (["noise=custom", "noise.matrix=[[0.5,0.4],[0.5,0.5]]"],
     ["noise.matrix", "row 0 sums to 0.9"]),
    (["loss=gce", "loss.q=5"], ["gce needs q in (0, 1], got 5"]),
    (["loss=gce", "loss.reduction=total"], ["loss.reduction must be one of mean, sum, got 'total'"]),
    (["loss=logit_clip", "loss.inner=logit_clip"], ["logit_clip cannot wrap itself"]),
    (["loss=logit_clip", "loss.delta=0"], ["logit_clip needs delta > 0, got 0"]),
    # sweeps: every combination is checked before any job starts
    (["-m", "optim.lr=-1,-2"], ["optim.lr must be a number > 0, got -1", "no job was started"]),
    (["-m", "noise=sym20", "noise.rate=0.2,1.5"], ["got 1.5", "noise.rate=1.5", "no job was started"]),
    (["-m", "loss=ce,gce", "seed=0,-3"], ["seed must be an integer >= 0, got -3", "no job was started"]),
    # values that were accepted silently (issue 27): ranges, NaN, empty lists, keys nothing reads
    (["model.hidden=[0]"], ["model.hidden must be", "integers >= 1", "got [0]"]),
    (["model.hidden=[16,-2]"], ["model.hidden must be", "got [16, -2]"]),
    (["model=cnn4", "model.hidden=0"], ["model.hidden must be", "got 0"]),
    (["model.dropout=nan"], ["model.dropout must be", "got nan"]),
    (["model.dropout=1.5"], ["model.dropout must be a number in [0, 1)", "got 1.5"]),
    (["model.dropout=-0.1"], ["model.dropout must be a number in [0, 1)", "got -0.1"]),
    (["loss=gce", "loss.q=nan"], ["loss.q must be a number", "got nan"]),
    (["scheduler=multistep", "scheduler.milestones=[abc]"], ["scheduler.milestones must be", "got ['abc']"]),
    (["scheduler=multistep", "scheduler.milestones=[-1]"], ["scheduler.milestones must be", "got [-1]"]),
    (["scheduler=multistep", "scheduler.gamma=-1"], ["scheduler.gamma must be a number > 0, got -1"]),
    (["scheduler=multistep", "scheduler.gamma=0"], ["scheduler.gamma must be a number > 0, got 0"]),
    (["dataset.split_seed=-1"], ["dataset.split_seed must be an integer >= 0, got -1"]),
    (["dataset=synthetic", "dataset.seed=-1"], ["dataset.seed must be an integer >= 0, got -1"]),
    (["calibrator=dirichlet", "calibrator.dirichlet.cv_grid=[]"], ["calibrator.dirichlet.cv_grid", "got []"]),
    (["calibrator=temperature", "+calibrator.temperature.foo=1"],
     ["unknown config key 'calibrator.temperature.foo'"]),
    (["+lr=0.1"], ["unknown config key 'lr'", "did you mean optim.lr"]),
    (["lr=0.1"], ["unknown config key 'lr'", "did you mean optim.lr"]),
    (["trainer.epoch=3"], ["unknown config key 'trainer.epoch'", "did you mean trainer.epochs"]),
    (["+trainer.epoch=3"], ["unknown config key 'trainer.epoch'", "trainer.epochs"]),
    (["hydra.run.dir="], ["hydra.run.dir is empty"]),
    (["-m", "hydra.sweep.dir=", "seed=0,1"], ["hydra.sweep.dir is empty"]),
    (["-m", "seed=range(0,-3)"], ["seed=range(0,-3) expands to no value", "no job would run"]),
    (["-m", "loss=glob(zz*)"], ["loss=glob(zz*) matches no loss", "known: ", "gce"]),
    (["-m", "hydra/launcher=packed", "hydra.launcher.dry_run=maybe", "seed=0,1"],
     ["hydra.launcher.dry_run must be true or false, got 'maybe'"]),
    (["trainer.threads=100000"], ["trainer.threads must be 'auto' or an integer", "100000"]),
    (["trainer.threads=0"], ["trainer.threads must be 'auto' or an integer", "got 0"]),
    # what crashed with a traceback (issue 27): sweeps and launchers the sweeper or launcher rejects
    (["-m", "optim.lr=interval(0.1,1)"],
     ["optim.lr=interval(0.1,1)", "basic sweeper", "hydra/sweeper=optuna"]),
    (["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=0", "seed=0,1"],
     ["hydra.launcher.n_jobs must be", "got 0"]),
    (["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=-1", "seed=0,1"],
     ["hydra.launcher.timeout_min must be an integer > 0, got -1"]),
    (["-m", "hydra/sweeper=optuna", "loss=gce", "loss.q=interval(1.5,2)"],
     ["gce needs q in (0, 1], got 1.5"]),
    (["-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=0", "loss=gce", "loss.q=interval(0.1,0.9)"],
     ["hydra.sweeper.n_trials must be an integer >= 1, got 0"]),
    # output folders
    (["hydra.run.dir=out/" + "x" * 300], ["x" * 20, "300 bytes", "at most 255"]),
    (["hydra.run.dir=out/é"],
     ["malformed override", "hydra.run.dir=out/é", "quote", "'hydra.run.dir=\"out/é\"'"]),
    (["hydra.run.dir=/proc/lossbench-test/run"], ["/proc/lossbench-test/run cannot be written", "proc"]),
    (["-m", "seed=0,1", "hydra.sweep.dir=/proc/lossbench-test/sweep"], ["cannot be written"]),
    (["hydra.run.dir=existing/note.txt/run"], ["note.txt is a file, not a folder"]),
]
if not torch.cuda.is_available():
    CASES += [
        (["trainer.device=cuda"], ["trainer.device=cuda but no CUDA device is available"]),
        (["-m", "trainer.device=cpu,cuda"], ["no CUDA device", "trainer.device=cuda", "no job was started"]),
    ]


def _ids(case):
    return " ".join(case[0])


def _check(code, err: str, out: str, fragments: list[str]) -> None:
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("lossbench: error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in err and not out.strip()


@pytest.mark.parametrize(("overrides", "fragments"), CASES, ids=[_ids(c) for c in CASES])
def test_bad_input_is_refused_in_one_line(h, tmp_path, capsys, monkeypatch, overrides, fragments):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing").mkdir()
    (tmp_path / "existing" / "note.txt").write_text("untouched\n")
    before = h.snapshot(tmp_path)
    out = tmp_path / "out"
    dirs = [f"hydra.run.dir={out}/run", f"hydra.sweep.dir={out}/sweep"]
    dirs = [d for d in dirs if d.split("=")[0] not in {o.split("=")[0] for o in overrides}]
    with pytest.raises(SystemExit) as exit_info:
        main(["run", *dirs, *overrides])
    captured = capsys.readouterr()
    _check(exit_info.value.code, captured.err, captured.out, fragments)
    assert h.snapshot(tmp_path) == before
    assert not out.exists()


def test_the_table_is_large_enough():
    assert len(CASES) >= 100


@pytest.mark.parametrize("dataset", ["mnist"])
def test_missing_data_files_are_refused_without_creating_the_run_directory(h, tmp_path, dataset):
    """Known only when the job loads the data: refused there, and the folders Hydra made are removed."""
    (tmp_path / "empty-data").mkdir()
    before = h.snapshot(tmp_path)
    proc = h.launch("run", f"dataset={dataset}", f"data_dir={tmp_path / 'empty-data'}",
                    f"hydra.run.dir={tmp_path / 'out' / 'nested' / 'run'}", cwd=tmp_path)
    out, err = proc.communicate(timeout=300)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == 2, err
    assert len(lines) == 1 and lines[0].startswith("lossbench: error: dataset: "), err
    assert "missing" in lines[0]
    assert "train-images-idx3-ubyte" in lines[0]
    assert not (tmp_path / "out").exists()
    assert h.snapshot(tmp_path) == before


@pytest.mark.parametrize(("overrides", "fragment"), [
    (["dataset.test_size=0.999"], "2 training, 0 validation and 1795 test samples for 10 classes"),
    (["dataset.val_size=5"], "5 validation"),
    (["dataset.test_size=4"], "4 test samples"),
])
def test_a_split_with_fewer_samples_than_classes_is_refused(h, cli, tmp_path, overrides, fragment):
    """Known only once the dataset is read: refused there, before anything is written."""
    before = h.snapshot(tmp_path)
    proc = cli("run", *overrides, f"hydra.run.dir={tmp_path / 'out' / 'run'}", cwd=tmp_path, check=False)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("lossbench: error: dataset: the split leaves ") and fragment in lines[0]
    assert "lower dataset.test_size or dataset.val_size" in lines[0]
    assert h.snapshot(tmp_path) == before

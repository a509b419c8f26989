"""The lossbench command: help, losses listing, and bad input refused in one line."""

import pytest


def test_help_commands(cli, tmp_path):
    top = cli("--help", cwd=tmp_path)
    assert "run" in top.stdout and "report" in top.stdout and "losses" in top.stdout
    run_help = cli("run", "--help", cwd=tmp_path)
    for group in ("dataset", "model", "loss", "noise", "reweight", "optim", "scheduler", "trainer", "logger"):
        assert f"{group}:" in run_help.stdout
    assert "sym60" in run_help.stdout


def test_losses_lists_every_registered_loss_with_family(cli, tmp_path):
    from lossbench.losses import LOSSES

    out = cli("losses", cwd=tmp_path).stdout
    for name, cls in LOSSES.items():
        assert name in out
        assert cls.family in out


def test_list_shows_group_options(cli, tmp_path):
    out = cli("list", "noise", "loss", cwd=tmp_path).stdout
    assert "sym60" in out and "focal" in out
    bad = cli("list", "nosie", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "unknown config group 'nosie'" in bad.stderr


def test_unknown_command_exits_nonzero(cli, tmp_path):
    proc = cli("trian", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "unknown command 'trian'" in proc.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["loss=fcoal"], "unknown loss 'fcoal'; known: "),
        (["noise=sym99"], "unknown noise 'sym99'; known: "),
        (["dataset=mnits"], "unknown dataset 'mnits'; known: "),
        (["model=resnet9000"], "unknown model 'resnet9000'; known: "),
        (["-m", "loss=ce,fcoal"], "unknown loss 'fcoal'"),
        (["trainer.foo=1"], "unknown config key 'trainer.foo'"),
        (["trainer.epochs=["], "malformed override"),
        (["trainer.epochs=0"], "trainer.epochs must be a positive integer, got 0"),
        (["trainer.batch_size=-8"], "trainer.batch_size must be a positive integer, got -8"),
        (["optim.lr=-0.1"], "optim.lr must be positive, got -0.1"),
        (["noise=sym60", "noise.rate=1.5"], "noise rate must be in [0, 1)"),
        (["noise=sym60", "noise.rate=-0.2"], "noise rate must be in [0, 1)"),
        (["noise=sym60", "noise.rate=0.95"], "10 classes"),
    ],
)
def test_bad_input_fails_before_training_in_one_line(cli, tmp_path, overrides, message):
    out = tmp_path / "run"
    proc = cli("run", f"hydra.run.dir={out}", *overrides, cwd=tmp_path, check=False)
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("lossbench: error:")]
    assert len(errors) == 1, proc.stderr
    assert message in errors[0]
    assert "Traceback" not in proc.stderr
    assert not (out / "summary.json").exists()
    assert not (out / "metrics.jsonl").exists()


def test_unwritable_output_directory_is_refused(cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = cli("run", f"hydra.run.dir={blocker}/run", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "is not writable" in proc.stderr

"""The lossbench command: help, losses listing, unknown commands (bad `run` input: tests/reliability)."""


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

"""Progress: batch-level updates from the trainer, 1-based epochs, run.log complete whatever the display."""

from __future__ import annotations

import io
import logging
import sys

import pytest
import torch
from rich.console import Console

from lossbench.core.sink import Sink
from lossbench.data import DATASETS
from lossbench.losses.comp_sum import CrossEntropy
from lossbench.models.mlp import MLP
from lossbench.reweight.base import Reweighter
from lossbench.train import sinks as S
from lossbench.train.trainer import Trainer


class Recorder(Sink):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def start(self, num_epochs, start_epoch=0):
        self.calls.append(("start", num_epochs, start_epoch))

    def batch(self, epoch, done, total):
        self.calls.append(("batch", epoch, done, total))

    def epoch(self, record):
        self.calls.append(("epoch", record["epoch"]))


def test_trainer_reports_every_batch_and_numbers_epochs_from_one():
    split = DATASETS.get("digits")()
    torch.manual_seed(0)
    model = MLP(split.input_shape, split.num_classes, hidden=(8,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
    recorder = Recorder()
    history = Trainer(epochs=2, batch_size=256, device="cpu", checkpoint_every=0).fit(
        model, CrossEntropy(), Reweighter(), opt, sched, split, seed=0, sinks=[recorder])
    assert [r["epoch"] for r in history] == [1, 2]
    assert recorder.calls[0] == ("start", 2, 0)
    n = len(split.y_train)
    steps = -(-n // 256)
    for epoch in (1, 2):
        batches = [c for c in recorder.calls if c[0] == "batch" and c[1] == epoch]
        assert [c[2] for c in batches] == [min(256 * (k + 1), n) for k in range(steps)]
        assert {c[3] for c in batches} == {n}
        # every batch of an epoch comes before its record
        assert recorder.calls.index(("epoch", epoch)) == recorder.calls.index(batches[-1]) + 1


def record(epoch: int) -> dict:
    return {"epoch": epoch, "train_loss": 0.5, "train_acc": 0.8, "val_acc": 0.7, "test_acc": 0.75,
            "lr": 0.1, "throughput": 12345.0, "seconds": 0.2}


@pytest.fixture
def logs(tmp_path):
    """Hydra's job logging in miniature: ``logs()`` installs a console handler on (the captured)
    stderr and a file handler (run.log), and returns a function that reads run.log."""
    root = logging.getLogger()
    level = root.level
    added: list[logging.Handler] = []
    # handlers an earlier in-process run left on the root logger write to streams closed since
    earlier = list(root.handlers)
    for handler in earlier:
        root.removeHandler(handler)

    def install():
        console = logging.StreamHandler(sys.stderr)  # the stream capsys captures in this test
        logfile = logging.FileHandler(tmp_path / "run.log")
        added.extend((console, logfile))
        root.setLevel(logging.INFO)
        root.addHandler(console)
        root.addHandler(logfile)
        return lambda: (logfile.flush(), (tmp_path / "run.log").read_text())[1]

    yield install
    for handler in added:
        root.removeHandler(handler)
        handler.close()
    for handler in earlier:
        root.addHandler(handler)
    root.setLevel(level)


def drive(sinks, epochs=2, total=300, batch=100):
    for sink in sinks:
        sink.start(epochs)
    for epoch in range(1, epochs + 1):
        for done in range(batch, total + 1, batch):
            for sink in sinks:
                sink.batch(epoch, done, total)
        for sink in sinks:
            sink.epoch(record(epoch))
    for sink in sinks:
        sink.close(None)


@pytest.mark.parametrize("mode", ["plain", "rich", "none"])
def test_run_log_gets_every_epoch_whatever_the_display(mode, logs, capsys):
    read_log = logs()
    screen = io.StringIO()
    if mode == "rich":
        sinks = [S.EpochLog(), S.RichProgress(console=Console(file=screen, force_terminal=True, width=150))]
    else:
        sinks = S.progress_sinks(mode)
    drive(sinks)
    logged = read_log()
    assert "epoch 1/2  loss 0.5000" in logged and "epoch 2/2  loss 0.5000" in logged
    assert "12,345 samples/s" in logged
    console = capsys.readouterr().err
    assert "Logging error" not in console
    if mode == "plain":
        assert "epoch 1/2" in console and "epoch 2/2" in console
    else:
        assert "epoch 1/2" not in console, console  # the bars (or nothing) instead of the lines
    if mode == "rich":
        shown = screen.getvalue()
        assert "2/2" in shown and "samples/s" in shown and "ETA" in shown and "300/300" in shown


def test_other_log_lines_still_reach_the_console_under_rich(logs, capsys):
    logs()
    screen = io.StringIO()
    rich = S.RichProgress(console=Console(file=screen, force_terminal=True, width=150))
    rich.start(1)
    logging.getLogger("lossbench").warning("checkpoint unusable")
    rich.close(None)
    assert "checkpoint unusable" in capsys.readouterr().err + screen.getvalue()
    logging.getLogger("lossbench").warning("after the bars")
    assert "after the bars" in capsys.readouterr().err  # the console handler's stream is restored


def test_long_epochs_log_their_progress(caplog):
    log = S.EpochLog(name="#0 ce/sym20", every_s=0.0)
    with caplog.at_level(logging.INFO, logger="lossbench.progress"):
        drive([log], epochs=1, total=300)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("[#0 ce/sym20] epoch 1/1  100/300 samples  ")
    assert "samples/s  epoch ETA " in lines[0]
    assert lines[-1].startswith("[#0 ce/sym20] epoch 1/1  loss")


def test_auto_display(monkeypatch, hydra_job):
    monkeypatch.setattr(S, "_terminal", lambda: False)
    assert [type(s) for s in S.progress_sinks("auto")] == [S.EpochLog]
    monkeypatch.setattr(S, "_terminal", lambda: True)
    assert [type(s) for s in S.progress_sinks("auto")] == [S.EpochLog, S.RichProgress]
    hydra_job()  # a sequential sweep (basic launcher): one job at a time, bars are fine
    assert S.RichProgress in [type(s) for s in S.progress_sinks("auto")]
    hydra_job("hydra/launcher=joblib", "hydra.launcher.n_jobs=2")  # two jobs share the terminal
    assert [type(s) for s in S.progress_sinks("auto")] == [S.EpochLog]
    from lossbench.lifecycle.builders import _display_name

    assert _display_name(None, {"loss": "ce", "noise": "sym20"}) == "#3 ce/sym20"


def test_unknown_progress_mode():
    with pytest.raises(ValueError, match="unknown trainer.progress 'fancy'; known: auto, rich, plain, none"):
        S.progress_sinks("fancy")

"""In-process fault injection on the trainer and the files it writes: a stop inside an epoch
resumes bit for bit; a second interruption while metrics.jsonl is rebuilt loses nothing;
temporary names are unique; a failed write leaves no temporary file; files get the umask."""

from __future__ import annotations

import errno
import os
import signal
import stat
import threading

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lossbench.core import signals
from lossbench.core.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from lossbench.lifecycle.builders import build_data, build_loss, build_model
from lossbench.lifecycle.run import experiment_key
from lossbench.reweight.base import ReweightContext
from lossbench.train.checkpoint import load_checkpoint, save_checkpoint
from lossbench.train.sinks import JsonlSink
from lossbench.train.trainer import Trainer, set_determinism

OVERRIDES = ["noise=sym40", "model.hidden=[16]", "model.dropout=0.2", "optim.lr=0.05",
             "trainer.batch_size=32",
             "trainer.epochs=3", "trainer.progress=none", "reweight=loss_based"]


def _parts(overrides=OVERRIDES):
    """What lossbench.lifecycle.run builds for one run, in process: (cfg, trainer, fit arguments)."""
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="lossbench.conf", version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    trainer = Trainer(**OmegaConf.to_container(cfg.trainer, resolve=True))
    seed = int(cfg.seed)
    set_determinism(seed, True)
    _, split, noisy = build_data(cfg)
    torch.manual_seed(seed)
    model = build_model(cfg, trainer, split)
    loss_fn = build_loss(cfg.loss, split.num_classes, len(split.y_train))
    reweight = instantiate(cfg.reweight)
    reweight.setup(ReweightContext(split=split, loss=loss_fn, true_T=noisy.expected_T,
                                   device=trainer.torch_device, seed=seed, make_model=None,
                                   train_warmup=None))
    optimizer = instantiate(cfg.optim)(model.parameters())
    scheduler = instantiate(cfg.scheduler)(optimizer)
    meta = {"experiment": experiment_key(OmegaConf.to_container(cfg, resolve=True))}
    return trainer, (model, loss_fn, reweight, optimizer, scheduler, split, seed), meta


def _fit(tmp_path, name, stop_at_call=None, monkeypatch=None):
    """Train into tmp_path/name; with ``stop_at_call`` a stop is requested at that batch boundary."""
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    trainer, args, meta = _parts()
    if stop_at_call is not None:
        calls = {"n": 0}

        def stop():
            calls["n"] += 1
            return signal.SIGTERM if calls["n"] >= stop_at_call else None

        monkeypatch.setattr(signals, "stop_requested", stop)
    else:
        monkeypatch.setattr(signals, "stop_requested", lambda: None)
    history = trainer.fit(*args, sinks=[JsonlSink(folder / "metrics.jsonl")],
                          checkpoint_path=folder / "checkpoint.pt", checkpoint_meta=meta)
    return history, args[0]


def _strip(records):
    timing = ("seconds", "train_seconds", "throughput")
    return [{k: v for k, v in r.items() if k not in timing} for r in records]


def test_stop_inside_an_epoch_resumes_bit_for_bit(tmp_path, monkeypatch):
    ref_history, ref_model = _fit(tmp_path, "ref", monkeypatch=monkeypatch)
    # 38 batches per epoch: call 40 is the second batch boundary of epoch 1
    with pytest.raises(signals.Interrupted) as stopped:
        _fit(tmp_path, "run", stop_at_call=40, monkeypatch=monkeypatch)
    assert stopped.value.checkpoint == tmp_path / "run" / "checkpoint.pt"
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["epoch"] == 0 and state["partial"]["next"] > 0, "a checkpoint inside epoch 1"
    assert len(read_jsonl(tmp_path / "run" / "metrics.jsonl")) == 1
    history, model = _fit(tmp_path, "run", monkeypatch=monkeypatch)
    assert _strip(history) == _strip(ref_history)
    assert _strip(read_jsonl(tmp_path / "run" / "metrics.jsonl")) == _strip(ref_history)
    for a, b in zip(ref_model.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_second_interruption_while_metrics_are_rebuilt_loses_nothing(tmp_path, monkeypatch):
    ref_history, _ = _fit(tmp_path, "ref", monkeypatch=monkeypatch)
    with pytest.raises(signals.Interrupted):
        _fit(tmp_path, "run", stop_at_call=80, monkeypatch=monkeypatch)  # batch 3 of epoch 2
    metrics = tmp_path / "run" / "metrics.jsonl"
    with metrics.open("a") as f:  # an epoch logged after the last checkpoint, as a kill can leave
        f.write('{"epoch": 99, "stale": true}\n')
    before = metrics.read_bytes()

    real_replace = os.replace

    def killed_before_rename(src, dst):
        if str(dst).endswith("metrics.jsonl"):
            raise KeyboardInterrupt  # the second interruption, inside the rebuild
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_before_rename)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, "run", monkeypatch=monkeypatch)
    assert metrics.read_bytes() == before, "the old records stay until the new ones are complete"
    assert not [p for p in metrics.parent.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(os, "replace", real_replace)
    history, _ = _fit(tmp_path, "run", monkeypatch=monkeypatch)
    assert _strip(read_jsonl(metrics)) == _strip(ref_history) == _strip(history)


def test_concurrent_writers_never_share_a_temporary_file(tmp_path):
    target = tmp_path / "checkpoint.pt"
    errors = []

    def write(i):
        try:
            for _ in range(20):
                save_checkpoint(target, {"writer": i, "x": torch.full((1000,), i)})
        except Exception as exc:  # noqa: BLE001 -- any crash fails the test below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    state = load_checkpoint(target)
    assert torch.equal(state["x"], torch.full((1000,), state["writer"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "checkpoint.pt"
    save_checkpoint(target, {"old": torch.zeros(3)})
    old = target.read_bytes()
    real_fsync = os.fsync

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(target, {"new": torch.ones(3)})
    with pytest.raises(OSError):
        write_jsonl_atomic(tmp_path / "metrics.jsonl", [{"epoch": 0}])
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert target.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_files_get_the_users_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_json_atomic(tmp_path / "summary.json", {"status": "completed"})
        save_checkpoint(tmp_path / "checkpoint.pt", {"x": torch.zeros(1)})
        write_jsonl_atomic(tmp_path / "metrics.jsonl", [])
    finally:
        os.umask(old)
    for name in ("summary.json", "checkpoint.pt", "metrics.jsonl"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name

"""dataset.subset (a stratified, seeded part of every dataset) and trainer.limit_train_batches: a protocol
smoke-tested in seconds, and marked in its summary as not a reproduction (issue 26, item 6)."""

from __future__ import annotations

import json

import pytest
import torch

from lossbench import noise as noise_lib
from lossbench.data import DATASETS
from lossbench.data.subset import stratified, take_subset
from lossbench.noise.synthetic import Symmetric


def test_stratified_keeps_each_class_share_and_is_seeded():
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    kept = stratified(labels, 20, seed=0)
    assert len(kept) == 20 and len(set(kept.tolist())) == 20
    assert torch.bincount(labels[kept], minlength=3).tolist() == [12, 6, 2]
    assert torch.equal(kept, stratified(labels, 20, seed=0))
    assert not torch.equal(kept, stratified(labels, 20, seed=1))
    # largest remainders: 7 of 100 is 4.2, 2.1, 0.7 -> 4, 2, 1
    assert torch.bincount(labels[stratified(labels, 7, seed=0)], minlength=3).tolist() == [4, 2, 1]


def test_take_subset_keeps_the_full_runs_noisy_labels_and_a_consistent_pool():
    split = DATASETS.get("digits")()
    split, noisy = noise_lib.apply(Symmetric(rate=0.4), split, 0)
    small, small_noisy = take_subset(split, noisy, 200, seed=0)
    assert len(small.y_train) == 200
    fraction = 200 / len(split.y_train)
    assert len(small.y_val) == round(fraction * len(split.y_val))
    assert len(small.y_test) == round(fraction * len(split.y_test))
    # the pool (train + val) is renumbered 0..m-1 and its noise records match the split
    pool = torch.cat([small.train_idx, small.val_idx]).sort().values
    assert torch.equal(pool, torch.arange(len(pool)))
    assert torch.equal(small_noisy.y_noisy[small.train_idx], small.y_train_noisy)
    assert torch.equal(small_noisy.y_noisy[small.val_idx], small.y_val_noisy)
    assert torch.equal(small_noisy.is_noisy, small_noisy.y_noisy != small.pool_labels())
    # each kept sample keeps the noisy label the full run gave it
    rows = {tuple(x.tolist()): int(y) for x, y in zip(split.x_train, split.y_train_noisy, strict=True)}
    assert all(rows[tuple(x.tolist())] == int(y)
               for x, y in zip(small.x_train, small.y_train_noisy, strict=True))
    # a fraction is the same as its count
    half, _ = take_subset(split, noisy, 0.5, seed=0)
    assert len(half.y_train) == round(0.5 * len(split.y_train))


def test_a_subset_larger_than_the_training_set_is_refused():
    split = DATASETS.get("digits")()
    split, noisy = noise_lib.apply(Symmetric(rate=0.2), split, 0)
    with pytest.raises(ValueError, match=r"dataset.subset=5000 .* 1213 training samples"):
        take_subset(split, noisy, 5000, seed=0)


def test_a_cut_down_run_records_it_and_is_marked(run_once):
    out, summary, _ = run_once("dataset.subset=300", "trainer.limit_train_batches=2", "trainer.epochs=2",
                               "noise=sym40")
    assert summary["num_train"] == 300 and summary["status"] == "completed"
    assert summary["cut_down"] == {"dataset.subset": 300, "trainer.limit_train_batches": 2}
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # two batches of 64 a epoch: the throughput counts 128 samples, not 300
    assert all(r["throughput"] * r["train_seconds"] == pytest.approx(128) for r in records)
    noise = dict(__import__("numpy").load(out / "noise.npz"))
    assert len(noise["train_idx"]) == 300 and len(noise["y_noisy"]) == 300 + summary["num_val"]


def test_a_full_run_has_no_cut_down_mark(run_once):
    _, summary, _ = run_once("trainer.epochs=1")
    assert "cut_down" not in summary and summary["num_train"] == 1213


@pytest.mark.parametrize(("override", "fragment"), [
    ("dataset.subset=0", "dataset.subset must be a fraction in (0, 1] or a whole number of training samples"),
    ("dataset.subset=1.5", "dataset.subset must be"),
    ("trainer.limit_train_batches=0", "trainer.limit_train_batches must be"),
    ("trainer.limit_train_batches=abc", "trainer.limit_train_batches must be"),
])
def test_bad_cut_down_settings_are_refused_in_one_line(capsys, monkeypatch, tmp_path, override, fragment):
    from lossbench.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["run", f"hydra.run.dir={tmp_path}/out", override])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in err and fragment in err, err


def test_the_batch_cap_limits_the_steps_of_each_epoch():
    from lossbench.core.sink import Sink
    from lossbench.losses.comp_sum import CrossEntropy
    from lossbench.models.mlp import MLP
    from lossbench.reweight.base import Reweighter
    from lossbench.train.trainer import Trainer

    class Count(Sink):
        def __init__(self):
            self.batches = []

        def batch(self, epoch, done, total):
            self.batches.append((epoch, done, total))

        def epoch(self, record):
            pass

    split = DATASETS.get("digits")()
    torch.manual_seed(0)
    model = MLP(split.input_shape, split.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
    count = Count()
    Trainer(epochs=2, device="cpu", progress="none", checkpoint_every=0, limit_train_batches=3).fit(
        model, CrossEntropy(), Reweighter(), opt, sched, split, seed=0, sinks=[count])
    assert count.batches == [(e, d, 192) for e in (1, 2) for d in (64, 128, 192)]
    count = Count()
    Trainer(epochs=1, device="cpu", progress="none", checkpoint_every=0, limit_train_batches=0.25).fit(
        model, CrossEntropy(), Reweighter(), opt, sched, split, seed=0, sinks=[count])
    assert len(count.batches) == 5  # a quarter of 19 batches, rounded up


def test_runs_made_before_the_cut_down_settings_are_still_the_same_experiment():
    from lossbench.lifecycle.run import experiment_key

    old = {"dataset": {"_target_": "x", "val_size": 0.1}, "trainer": {"epochs": 3}}
    new = {"dataset": {"_target_": "x", "val_size": 0.1, "subset": None, "subset_seed": 0},
           "trainer": {"epochs": 3, "limit_train_batches": None,
                       "early_stopping": {"patience": None, "metric": "acc", "view": "noisy",
                                          "min_delta": 0.0}}}
    assert experiment_key(old) == experiment_key(new)
    cut = {**new, "dataset": {**new["dataset"], "subset": 100}}
    assert experiment_key(cut)["dataset"] == {"_target_": "x", "val_size": 0.1, "subset": 100,
                                              "subset_seed": 0}


def test_the_builder_gets_the_dataset_node_resolved_without_the_subset_keys():
    from hydra import compose, initialize_config_module

    from lossbench.data.subset import builder_config

    with initialize_config_module(config_module="lossbench.conf", version_base="1.3"):
        cfg = compose("config", overrides=["dataset=mnist", "data_dir=/somewhere", "dataset.subset=0.1"])
    node = builder_config(cfg.dataset)
    assert node.data_dir == "/somewhere" and "subset" not in node and "subset_seed" not in node

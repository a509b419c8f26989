"""End to end: what a noisy run records, the noise seed, memorization, refusal before training."""

import json
import math

import numpy as np
import pytest
import torch

from lossbench import noise
from lossbench.data.digits import digits
from lossbench.noise.base import realized_transition
from lossbench.noise.flip_maps import DIGITS_MAP
from lossbench.noise.synthetic import Symmetric

FAST = ("trainer.checkpoint_every=0",)


def test_asym40_run_records_labels_mask_and_both_matrices(run_once):
    out, summary, _ = run_once("noise=asym40", "trainer.epochs=2", *FAST)
    z = np.load(out / "noise.npz")
    assert {"y_noisy", "is_noisy", "y_clean", "expected_T", "realized_T", "train_idx", "val_idx"} <= set(z)
    y, y_noisy, is_noisy = z["y_clean"], z["y_noisy"], z["is_noisy"]
    n = len(y)
    assert n == len(z["train_idx"]) + len(z["val_idx"])
    assert np.array_equal(np.sort(np.concatenate([z["train_idx"], z["val_idx"]])), np.arange(n))
    assert np.array_equal(is_noisy, y_noisy != y)
    # only the map's classes flip, each to its target
    targets = np.array([DIGITS_MAP.get(i, i) for i in range(10)])
    assert set(np.unique(y[is_noisy])) <= set(DIGITS_MAP)
    assert np.array_equal(y_noisy[is_noisy], targets[y[is_noisy]])
    # realized rate: 0.4 of the labels of classes 2, 3, 5, 6, 7 (binomial, 4 sds)
    n_source = int(np.isin(y, list(DIGITS_MAP)).sum())
    expected_rate = 0.4 * n_source / n
    assert abs(is_noisy.mean() - expected_rate) <= 4 * math.sqrt(n_source * 0.4 * 0.6) / n
    assert summary["realized_noise_rate"] == pytest.approx(is_noisy.mean(), abs=1e-12)
    assert summary["noise_kind"] == "asymmetric" and summary["noise_rate"] == 0.4
    assert np.allclose(z["expected_T"][2, [2, 7]], [0.6, 0.4]) and z["expected_T"][0, 0] == 1
    realized = realized_transition(torch.as_tensor(y), torch.as_tensor(y_noisy), 10)
    assert np.array_equal(z["realized_T"], realized)


def pool_noise(seed: int) -> np.ndarray:
    return noise.apply(Symmetric(0.6), digits(), seed)[1].y_noisy.numpy()


def test_memorization_rises_under_sym60_with_ce(run_once):
    out, summary, _ = run_once(
        "noise=sym60", "loss=ce", "seed=0", "noise_seed=7", "trainer.epochs=12", "trainer.batch_size=32",
        "optim=adam", "optim.lr=0.005", "scheduler=none", *FAST,
    )
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    memorization = [r["memorization"] for r in rows]
    assert all(0 <= m <= 1 for m in memorization)
    assert all(0 <= r["train_clean_acc"] <= 1 for r in rows)
    # early learning fits the clean labels first, then the network memorizes the noisy ones
    assert max(r["train_clean_acc"] for r in rows) > 0.6
    assert memorization[-1] > min(memorization) + 0.05
    assert summary["final_memorization"] == memorization[-1]
    assert np.array_equal(np.load(out / "noise.npz")["y_noisy"], pool_noise(7))


def test_noise_seed_alone_fixes_the_labels(run_once):
    out, summary, _ = run_once("noise=sym60", "seed=1", "noise_seed=7", "trainer.epochs=1", *FAST)
    assert summary["seed"] == 1 and summary["noise_seed"] == 7
    # the labels of a run with training seed 1 are those of noise seed 7, as for seed 0 above
    assert np.array_equal(np.load(out / "noise.npz")["y_noisy"], pool_noise(7))
    assert not np.array_equal(pool_noise(7), pool_noise(1))


def test_impossible_rate_is_refused_before_training(run_once):
    out, summary, proc = run_once("noise=sym", "noise.rate=0.95", check=False)
    assert proc.returncode != 0 and summary is None
    assert "no more likely than any other; use a rate below 0.900" in proc.stdout + proc.stderr
    assert not (out / "metrics.jsonl").exists() and not (out / "noise.npz").exists()

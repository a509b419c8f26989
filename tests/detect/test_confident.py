"""Confident learning through cleanlab: same answers as cleanlab itself; a missing cleanlab is one line."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
import torch

from lossbench.detect.confident import INSTALL_HINT, ConfidentLearning, cleanlab_detection

cleanlab = pytest.importorskip("cleanlab")


def _probs(n=300, c=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % c
    logits = rng.normal(size=(n, c)) + 3.0 * np.eye(c)[labels]
    flip = rng.random(n) < 0.2
    labels[flip] = (labels[flip] + 1) % c
    p = np.exp(logits)
    return labels, p / p.sum(1, keepdims=True), flip


def test_cleanlab_runs_in_process(monkeypatch):
    """No multiprocessing pool: a fork of a torch process can hang (it did, on MNIST)."""
    import multiprocessing

    def refuse(*args, **kwargs):
        raise AssertionError("cleanlab started a process pool")

    monkeypatch.setattr(multiprocessing, "Pool", refuse)
    labels, probs, _ = _probs(n=400, c=5)
    found = cleanlab_detection(labels, probs, "prune_by_noise_rate")
    assert found.flags.any()


def test_lossbench_path_equals_cleanlab_called_directly():
    import cleanlab.count
    import cleanlab.filter
    import cleanlab.rank

    labels, probs, _ = _probs()
    found = cleanlab_detection(labels, probs, "prune_by_noise_rate")
    direct = cleanlab.filter.find_label_issues(  # n_jobs only splits the work (no fork in a test)
        labels=labels, pred_probs=probs, filter_by="prune_by_noise_rate", n_jobs=1
    )
    assert found.flags.numpy().tolist() == direct.tolist()
    quality = cleanlab.rank.get_label_quality_scores(labels=labels, pred_probs=probs)
    assert np.allclose(found.scores.numpy(), 1.0 - quality, atol=1e-6)
    joint = cleanlab.count.estimate_joint(labels=labels, pred_probs=probs)
    # T[i, j] = P(given j | true i) = joint[j, i] / sum_j joint[j, i]; its rows sum to 1
    assert np.allclose(found.estimated_T, (joint / joint.sum(0, keepdims=True)).T)
    assert np.allclose(found.estimated_T.sum(1), 1.0)
    assert found.estimated_rate == pytest.approx(direct.mean())


def test_confident_learning_on_digits_sym40_finds_most_flips(digits_noisy, make_context):
    split, _ = digits_noisy("sym40")
    truth = split.y_train_noisy != split.y_train
    found = ConfidentLearning(epochs=10).detect(make_context(split))
    tp = int((found.flags & truth).sum())
    assert tp / int(found.flags.sum()) > 0.8 and tp / int(truth.sum()) > 0.8
    assert abs(found.estimated_rate - float(truth.double().mean())) < 0.06
    assert found.trainings == 5


def test_missing_cleanlab_is_one_line_with_the_install_command(monkeypatch):
    real_import = builtins.__import__

    def no_cleanlab(name, *args, **kwargs):
        if name.startswith("cleanlab"):
            raise ImportError("No module named 'cleanlab'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cleanlab)
    with pytest.raises(ValueError) as err:
        ConfidentLearning()
    assert str(err.value) == INSTALL_HINT and "pip install" in INSTALL_HINT and "\n" not in INSTALL_HINT


def test_folds_are_seeded(digits_noisy, make_context):
    split, _ = digits_noisy("sym20")
    det = ConfidentLearning(learner="logistic")
    a, b = det.out_of_fold(make_context(split, seed=3)), det.out_of_fold(make_context(split, seed=3))
    assert torch.equal(a, b)
    assert not torch.equal(a, det.out_of_fold(make_context(split, seed=4)))

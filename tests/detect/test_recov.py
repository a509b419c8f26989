"""ReCoV and fastReCoV: the binomial test, the fold rules, the batched learner, and detection."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from lossbench.detect.base import DetectContext
from lossbench.detect.folds import fit_logistic, kfold, logistic_probs
from lossbench.detect.recov import (
    FastReCoV,
    ReCoV,
    binomial_flags,
    fold_score,
    min_detectable_share,
    weighted_folds,
)


def test_binomial_p_values_and_bh_flags_on_hand_worked_counts():
    # R = 4 repetitions, k = 2 folds: under the null count ~ Binomial(4, 1/2).
    # P(X > c) for c = 4, 3, 2, 0: 0, 1/16, 5/16, 15/16.
    counts = torch.tensor([4, 3, 2, 0])
    flags, p = binomial_flags(counts, repetitions=4, folds=2, alpha=0.1)
    assert p.tolist() == pytest.approx([0.0, 1 / 16, 5 / 16, 15 / 16])
    # BH at 0.1 with m = 4: sorted p (0, 1/16, 5/16, 15/16) against i * 0.1 / 4 =
    # (0.025, 0.05, 0.075, 0.1): p_(1) = 0 <= 0.025 passes, p_(2) = 0.0625 > 0.05,
    # p_(3) > 0.075, p_(4) > 0.1: only the first sample is rejected.
    assert flags.tolist() == [True, False, False, False]
    flags, _ = binomial_flags(counts, repetitions=4, folds=2, alpha=0.3)
    # at 0.3 the thresholds are (0.075, 0.15, 0.225, 0.3): the two smallest pass.
    assert flags.tolist() == [True, True, False, False]


def test_min_detectable_share_by_hand():
    # n = 1000 labels, nothing flagged, alpha 0.05: z = Phi^-1(1 - 0.05 / 1000) = 3.8906;
    # k = 5, R = 625: sd of a share = sqrt(0.2 * 0.8 / 625) = 0.016, so the bar is 0.2 + 0.06225
    assert min_detectable_share(1000, 0, 625, 5, 0.05) == pytest.approx(0.2 + 3.8906 * 0.016, abs=1e-4)
    # 4x the repetitions halves the excess; flagging 100 of them lowers z to Phi^-1(0.995) = 2.5758
    assert min_detectable_share(1000, 0, 2500, 5, 0.05) == pytest.approx(0.2 + 3.8906 * 0.008, abs=1e-4)
    assert min_detectable_share(1000, 100, 625, 5, 0.05) == pytest.approx(0.2 + 2.5758 * 0.016, abs=1e-4)


def test_closest_decision_is_the_official_count_threshold():
    # R = 20, k = 5: a sample at count c has p = P(X > c), X ~ Bin(20, 0.2).
    counts = torch.tensor([12, 11, 9, 7, 4, 4, 3, 2, 5, 1])
    flags, p = binomial_flags(counts, 20, 5, alpha=0.05, decision="closest")
    from scipy.stats import binom, false_discovery_control

    adjusted = false_discovery_control(p.numpy(), method="bh")
    closest = p.numpy()[np.argmin(np.abs(adjusted - 0.05))]
    threshold = binom.ppf(1 - closest, 20, 0.2)
    assert flags.tolist() == (counts.numpy() > threshold).tolist()
    assert flags[:2].all() and not flags[3:].any()


def test_fold_auc_is_the_official_code_s_roc_auc_of_the_predicted_classes():
    """mushroom_recov.py scores a fold by roc_auc_score(y_test, lr.predict(X_test)); beyond two classes,
    scikit-learn's macro AUC of the one-hot predictions."""
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import label_binarize

    g = torch.Generator().manual_seed(0)
    y = torch.randint(2, (300,), generator=g)
    pred = torch.where(torch.rand(300, generator=g) < 0.8, y, 1 - y)
    assert fold_score(pred, y, 2, "auc") == pytest.approx(roc_auc_score(y.numpy(), pred.numpy()), abs=1e-12)
    y = torch.randint(4, (300,), generator=g)
    pred = torch.where(torch.rand(300, generator=g) < 0.6, y, torch.randint(4, (300,), generator=g))
    expected = roc_auc_score(label_binarize(y.numpy(), classes=range(4)),
                             label_binarize(pred.numpy(), classes=range(4)), average="macro")
    assert fold_score(pred, y, 4, "auc") == pytest.approx(expected, abs=1e-12)


def test_auc_and_accuracy_can_name_different_worst_folds():
    """An imbalanced fold predicted all-majority: accuracy 0.9 but AUC 0.5 (hand-worked), against a fold of
    accuracy 0.85 and AUC (0.75 + 0.875) / 2 = 0.8125: accuracy calls the second worst, AUC the first."""
    y1, p1 = torch.tensor([0] * 18 + [1] * 2), torch.zeros(20, dtype=torch.long)
    y2 = torch.tensor([0] * 16 + [1] * 4)
    p2 = torch.tensor([0] * 14 + [1] * 2 + [1] * 3 + [0])
    assert fold_score(p1, y1, 2, "accuracy") == pytest.approx(0.9)
    assert fold_score(p2, y2, 2, "accuracy") == pytest.approx(0.85)
    assert fold_score(p1, y1, 2, "auc") == pytest.approx(0.5)
    assert fold_score(p2, y2, 2, "auc") == pytest.approx((0.75 + 14 / 16) / 2)
    assert fold_score(torch.zeros(5, dtype=torch.long), torch.zeros(5, dtype=torch.long), 2, "auc") == 0.5
    assert ReCoV().fold_metric == "auc"


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="unknown detect.fold_metric 'f1'; known: auc, accuracy"):
        ReCoV(fold_metric="f1")
    with pytest.raises(ValueError, match="detect.folds must be an integer >= 2"):
        ReCoV(folds=1)
    with pytest.raises(ValueError, match=r"detect.alpha \(the FDR level\) must be in \(0, 1\)"):
        ReCoV(alpha=1.5)
    with pytest.raises(ValueError, match="unknown detect.decision"):
        ReCoV(decision="bonferroni")
    with pytest.raises(ValueError, match="unknown detect.learner"):
        FastReCoV(learner="forest")
    with pytest.raises(ValueError, match="needs detect.folds >= 3"):
        FastReCoV(folds=2)


def test_kfold_is_a_balanced_seeded_partition():
    a = kfold(103, 5, torch.Generator().manual_seed(3))
    b = kfold(103, 5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert sorted(torch.bincount(a).tolist()) == [20, 20, 21, 21, 21]
    assert not torch.equal(a, kfold(103, 5, torch.Generator().manual_seed(4)))


def test_weighted_folds_at_tau_zero_orders_by_memory():
    memory = torch.tensor([0.9, 0.1, 0.5, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4, 0.0])
    fold_of = weighted_folds(memory, k=5, tau=0.0, generator=torch.Generator())
    # decreasing memory: 0, 3, 5, 7, 2, 8, 6, 4, 1, 9; size 2 per fold, best first, worst last
    assert fold_of[[0, 3]].tolist() == [0, 0]
    assert fold_of[[1, 9]].tolist() == [4, 4]
    assert sorted(torch.bincount(fold_of).tolist()) == [2, 2, 2, 2, 2]
    # large tau: a seeded uniform permutation, still a balanced partition
    spread = weighted_folds(memory, k=5, tau=1e5, generator=torch.Generator().manual_seed(0))
    assert sorted(torch.bincount(spread).tolist()) == [2, 2, 2, 2, 2]


def test_batched_logistic_regression_equals_scikit_learn(digits_noisy):
    split, _ = digits_noisy("clean")
    x, y = split.x_train, split.y_train
    masks = torch.stack([kfold(len(y), 3, torch.Generator().manual_seed(0)) != f for f in range(3)])
    W, b = fit_logistic(x, y, masks, 10)
    ours = logistic_probs(x, W, b)
    for f in range(3):
        rows = masks[f].numpy()
        ref = LogisticRegression(C=1.0, max_iter=2000).fit(x[rows].numpy(), y[rows].numpy())
        assert np.abs(ref.predict_proba(x.numpy()) - ours[f].numpy()).max() < 0.03


def _blobs(n: int = 240, flip: float = 0.2, seed: int = 0):
    """Four well-separated Gaussian blobs in 2-D; a share ``flip`` of labels moved to another class."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    centers = torch.tensor([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0], [6.0, 6.0]])
    x = centers[y] + torch.randn(n, 2, generator=g)
    noisy = y.clone()
    flipped = torch.randperm(n, generator=g)[: int(flip * n)]
    noisy[flipped] = (y[flipped] + 1 + torch.randint(0, 3, (len(flipped),), generator=g)) % 4
    return x, noisy, noisy != y


def _context(x, y, seed=0) -> DetectContext:
    return DetectContext(
        x=x,
        y=y,
        num_classes=4,
        seed=seed,
        device=torch.device("cpu"),
        inputs=lambda: x,
        features=lambda epochs: x,
        fit_predict=None,
    )


def test_recov_finds_flipped_labels_on_separable_blobs():
    x, y, truth = _blobs()
    found = ReCoV(repetitions=400, folds=5, learner="logistic").detect(_context(x, y))
    tp = int((found.flags & truth).sum())
    assert tp / int(found.flags.sum()) >= 0.9  # precision
    assert tp / int(truth.sum()) >= 0.7  # recall
    assert found.estimated_rate == pytest.approx(float(found.flags.double().mean()))
    assert found.trainings == 2000 and found.seconds > 0
    n, flagged = len(y), int(found.flags.sum())
    assert found.info["min_detectable_share"] == pytest.approx(min_detectable_share(n, flagged, 400, 5, 0.05))


def test_fast_recov_estimates_the_rate_on_blobs_and_is_seeded():
    x, y, truth = _blobs(flip=0.3)
    a = FastReCoV(representation="inputs").detect(_context(x, y, seed=1))
    b = FastReCoV(representation="inputs").detect(_context(x, y, seed=1))
    assert torch.equal(a.flags, b.flags) and torch.equal(a.scores, b.scores)
    assert abs(a.estimated_rate - float(truth.double().mean())) < 0.05
    assert math.isclose(float(a.scores.max()), float(a.scores[a.flags].max()), rel_tol=0, abs_tol=1e-6)


@pytest.mark.parametrize("noise,tolerance", [("clean", 0.03), ("sym60", 0.06)])
def test_fast_recov_on_digits_flags_little_without_noise_and_estimates_heavy_noise(
    digits_noisy, make_context, noise, tolerance
):
    split, noisy = digits_noisy(noise)
    truth = split.y_train_noisy != split.y_train
    found = FastReCoV().detect(make_context(split))
    assert abs(found.estimated_rate - float(truth.double().mean())) <= tolerance

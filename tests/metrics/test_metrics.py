"""Every metric against a hand-worked example; ECE and MCE against torchmetrics."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.functional.classification import multiclass_calibration_error

from lossbench.metrics import (
    accuracy,
    adaptive_ece,
    balanced_accuracy,
    brier,
    class_accuracy,
    classwise_ece,
    confidence_gap,
    ece,
    epoch_metrics,
    f1,
    mce,
    mean_confidence,
    nll,
    reliability,
    top_k_accuracy,
)

# Five samples, three classes. logits = log p, so softmax(logits) = p.
#   sample  p                   y   top label  confidence  15-bin index  correct
#   1       (0.70, 0.20, 0.10)  0   0          0.70        10            yes
#   2       (0.10, 0.65, 0.25)  2   1          0.65         9            no
#   3       (0.05, 0.05, 0.90)  2   2          0.90        13            yes
#   4       (0.30, 0.55, 0.15)  1   1          0.55         8            yes
#   5       (0.72, 0.18, 0.10)  1   0          0.72        10            no
P = torch.tensor([
    [0.70, 0.20, 0.10],
    [0.10, 0.65, 0.25],
    [0.05, 0.05, 0.90],
    [0.30, 0.55, 0.15],
    [0.72, 0.18, 0.10],
], dtype=torch.float64)
Y = torch.tensor([0, 2, 2, 1, 1])
Z = P.log()


def test_accuracy_by_hand():
    assert accuracy(Z, Y) == pytest.approx(3 / 5)


def test_class_accuracy_by_hand():
    # class 0: sample 1 right; class 1: 4 right, 5 wrong; class 2: 2 wrong, 3 right; class 3: none
    z = torch.cat([Z, torch.full((5, 1), -50.0, dtype=Z.dtype)], dim=1)
    assert class_accuracy(z, Y) == [1.0, 0.5, 0.5, None]


def test_balanced_accuracy_and_f1_by_hand():
    # recalls: class 0 1/1, class 1 1/2, class 2 1/2 -> 2/3. Per class (TP, FP, FN): 0 (1, 1, 0) -> 2/3;
    # 1 (1, 1, 1) -> 1/2; 2 (1, 0, 1) -> 2/3; macro F1 = 11/18
    assert balanced_accuracy(Z, Y) == pytest.approx(2 / 3)
    assert f1(Z, Y) == pytest.approx(11 / 18)
    # two classes: F1 of class 1. predictions 1, 1, 0, 0 for labels 1, 0, 1, 0: TP 1, FP 1, FN 1 -> 1/2
    z = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    assert f1(z, torch.tensor([1, 0, 1, 0])) == pytest.approx(0.5)


@pytest.mark.parametrize("num_classes, seed", [(2, 0), (2, 1), (3, 2), (7, 3), (26, 4)])
def test_balanced_accuracy_and_f1_match_scikit_learn(num_classes, seed):
    from sklearn.metrics import balanced_accuracy_score, f1_score

    g = torch.Generator().manual_seed(seed)
    z = torch.randn(200, num_classes, generator=g)
    y = torch.randint(0, num_classes, (200,), generator=g)
    z[:, -1] -= 3.0  # the last class rarely predicted (and, with 26 classes, some never)
    pred = z.argmax(1).numpy()
    average = "binary" if num_classes == 2 else "macro"
    assert balanced_accuracy(z, y) == pytest.approx(balanced_accuracy_score(y.numpy(), pred), abs=1e-12)
    assert f1(z, y) == pytest.approx(f1_score(y.numpy(), pred, average=average, zero_division=0), abs=1e-12)


def test_top_k_accuracy_by_hand():
    # Twelve classes, logits 11, 10, ..., 0: class c has rank c. Labels of rank 0, 4, 5, 11.
    z = torch.arange(11, -1, -1, dtype=torch.float32).repeat(4, 1)
    y = torch.tensor([0, 4, 5, 11])
    assert top_k_accuracy(z, y, k=5) == pytest.approx(2 / 4)
    assert top_k_accuracy(z, y, k=1) == pytest.approx(1 / 4)
    assert top_k_accuracy(z[:, :3], torch.tensor([0, 1, 2, 2]), k=5) == 1.0  # k above C: all hit


def test_nll_by_hand():
    # -(ln .70 + ln .25 + ln .90 + ln .55 + ln .18) / 5
    expected = -(math.log(0.70) + math.log(0.25) + math.log(0.90) + math.log(0.55) + math.log(0.18)) / 5
    assert nll(Z, Y) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.83219304, abs=1e-8)


def test_brier_by_hand():
    # (.3^2+.2^2+.1^2) + (.1^2+.65^2+.75^2) + (.05^2+.05^2+.1^2) + (.3^2+.45^2+.15^2) + (.72^2+.82^2+.1^2)
    #  = .14 + .995 + .015 + .315 + 1.2008 = 2.6658, over 5 samples
    assert brier(Z, Y) == pytest.approx(2.6658 / 5, abs=1e-12)


def test_ece_by_hand():
    # Bin 10 holds samples 1 and 5: accuracy .5, confidence .71, gap .21, weight 2/5.
    # Bins 9, 13, 8 hold one sample each with gaps .65, .10, .45.
    # ECE = (2 * .21 + .65 + .10 + .45) / 5 = 1.62 / 5
    assert ece(Z, Y) == pytest.approx(1.62 / 5, abs=1e-12)
    # With two bins [0, .5) and [.5, 1] every sample is in the upper one: |.704 - .6|.
    assert ece(Z, Y, n_bins=2) == pytest.approx(0.104, abs=1e-12)


def test_mce_by_hand():
    assert mce(Z, Y) == pytest.approx(0.65, abs=1e-12)  # bin 9: confidence .65, accuracy 0
    assert mce(Z, Y, n_bins=2) == pytest.approx(0.104, abs=1e-12)


def test_adaptive_ece_by_hand():
    # Sorted confidences .55 (right), .65 (wrong), .70 (right), .72 (wrong), .90 (right).
    # Two equal-mass bins by rank r -> floor(2 r / 5): {.55, .65, .70} and {.72, .90}.
    # (3/5) |2/3 - 1.9/3| + (2/5) |1/2 - .81| = .02 + .124
    assert adaptive_ece(Z, Y, n_bins=2) == pytest.approx(0.144, abs=1e-12)
    # With at least as many bins as samples each sample is its own bin: mean |correct - confidence|.
    assert adaptive_ece(Z, Y, n_bins=15) == pytest.approx((0.30 + 0.65 + 0.10 + 0.45 + 0.72) / 5, abs=1e-12)


def test_classwise_ece_by_hand():
    # Two bins [0, .5), [.5, 1] on each class's probability column.
    # class 0: p = .7 .1 .05 .3 .72, y=0 at sample 1: |0 - .45| + |1 - 1.42| = .87
    # class 1: p = .2 .65 .05 .55 .18, y=1 at 4, 5:   |1 - .43| + |1 - 1.20| = .77
    # class 2: p = .1 .25 .9 .15 .1,  y=2 at 2, 3:    |1 - .60| + |1 - .90|  = .50
    # cw-ECE = (.87 + .77 + .50) / (n C) = 2.14 / 15
    assert classwise_ece(Z, Y, n_bins=2) == pytest.approx(2.14 / 15, abs=1e-12)


def test_confidence_and_gap_by_hand():
    # mean confidence (.70 + .65 + .90 + .55 + .72) / 5 = .704; accuracy .6; gap +.104 (over-confident)
    assert mean_confidence(Z) == pytest.approx(0.704, abs=1e-12)
    assert confidence_gap(Z, Y) == pytest.approx(0.104, abs=1e-12)
    assert confidence_gap(Z / 10, Y) < 0  # flattened to near uniform: under-confident


def test_reliability_bins_by_hand():
    bins = reliability(Z, Y)
    assert bins["n_bins"] == 15
    assert bins["count"] == [0] * 8 + [1, 1, 2, 0, 0, 1, 0, 0]  # 15 bins and the bin of confidence 1
    assert bins["accuracy"][10] == pytest.approx(0.5) and bins["confidence"][10] == pytest.approx(0.71)
    assert bins["accuracy"][9] == 0.0 and bins["confidence"][9] == pytest.approx(0.65)
    assert bins["accuracy"][0] is None and bins["confidence"][14] is None


def test_confidence_one_has_its_own_bin_as_in_torchmetrics():
    # Two samples at confidence 1.0 (one right, one wrong) and one at .98 (right), in bin 14.
    # Bin "1.0": |1/2 - 1| with weight 2/3; bin 14: |1 - .98| with weight 1/3. ECE = 1/3 + .02/3.
    z = torch.tensor([[100.0, 0.0], [100.0, 0.0], [math.log(0.98), math.log(0.02)]], dtype=torch.float64)
    y = torch.tensor([0, 1, 0])
    bins = reliability(z, y)
    assert bins["count"][14:] == [1, 2]
    assert ece(z, y) == pytest.approx(1 / 3 + 0.02 / 3, abs=1e-12)
    assert mce(z, y) == pytest.approx(0.5, abs=1e-12)
    for norm, ours in (("l1", ece), ("max", mce)):
        theirs = multiclass_calibration_error(z.softmax(1), y, 2, n_bins=15, norm=norm).item()
        assert ours(z, y) == pytest.approx(theirs, abs=1e-6)


def test_epoch_metrics_agree_with_full_metrics():
    out = epoch_metrics(Z.float(), Y)
    assert set(out) == {"acc", "nll", "brier", "ece"}
    assert out["acc"] == accuracy(Z, Y)
    assert out["ece"] == pytest.approx(ece(Z, Y), abs=1e-6)
    assert out["nll"] == pytest.approx(nll(Z, Y), abs=1e-6)
    assert epoch_metrics(Z[:0], Y[:0]) == {}


@pytest.mark.parametrize("scale", [0.3, 1.0, 3.0, 8.0])
@pytest.mark.parametrize("num_classes", [2, 10, 100])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ece_and_mce_match_torchmetrics(scale, num_classes, dtype):
    # Scale 8 makes many confidences round to 1.0: both put them in a bin of their own.
    # n = 1000 keeps torchmetrics' float32 sums within 1e-6 of our float64 ones.
    g = torch.Generator().manual_seed(num_classes * 10 + int(scale * 10))
    z = (torch.randn(1000, num_classes, generator=g) * scale).to(dtype)
    y = torch.randint(0, num_classes, (1000,), generator=g)
    y[:500] = z[:500].argmax(1)  # half right, so that accuracy varies across bins
    for norm, ours in (("l1", ece), ("max", mce)):
        theirs = multiclass_calibration_error(z, y, num_classes, n_bins=15, norm=norm).item()
        assert ours(z, y) == pytest.approx(theirs, abs=1e-6), norm


def test_empty_split_gives_nan():
    z, y = torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)
    for metric in (accuracy, nll, brier, ece, mce, adaptive_ece, classwise_ece, confidence_gap, f1,
                   balanced_accuracy):
        assert math.isnan(metric(z, y))


@pytest.mark.parametrize("k, n, c, scale", [(8, 360, 10, 3.0), (1, 50, 3, 1.0), (3, 200, 100, 30.0)])
def test_stacked_epoch_metrics_are_each_members_epoch_metrics(k, n, c, scale):
    """A pack's per-epoch figures for K members at once: accuracy equal, the rest to float64 rounding;
    large logits (scale 30) put confidences at 1.0, in ECE's extra bin."""
    from lossbench.metrics import epoch_metrics, stacked_epoch_metrics

    g = torch.Generator().manual_seed(k * n)
    z = torch.randn(k, n, c, generator=g) * scale
    y = torch.randint(0, c, (k, n), generator=g)
    stacked = stacked_epoch_metrics(z, y)
    assert len(stacked) == k
    for member, row in enumerate(stacked):
        alone = epoch_metrics(z[member], y[member])
        assert row.keys() == alone.keys() and row["acc"] == alone["acc"]
        for key in ("nll", "brier", "ece"):
            assert row[key] == pytest.approx(alone[key], rel=1e-12, abs=1e-15), key
    assert stacked_epoch_metrics(z[:, :0], y[:, :0]) == [{}] * k  # an empty split, as epoch_metrics


def test_stacked_epoch_metrics_on_concrete_numbers():
    """Two members, two samples, two classes: softmax by hand."""
    from lossbench.metrics import stacked_epoch_metrics

    z = torch.tensor([[[0.0, math.log(3.0)], [0.0, 0.0]], [[math.log(4.0), 0.0], [0.0, math.log(9.0)]]])
    y = torch.tensor([[1, 0], [1, 1]])
    first, second = stacked_epoch_metrics(z, y)
    # member 0: p = (1/4, 3/4) right, (1/2, 1/2) -> argmax 0, right;
    # member 1: (4/5, 1/5) wrong, (1/10, 9/10) right
    assert first["acc"] == 1.0 and second["acc"] == 0.5
    assert first["nll"] == pytest.approx(-(math.log(0.75) + math.log(0.5)) / 2)
    assert second["brier"] == pytest.approx((2 * 0.8 ** 2 + 2 * 0.1 ** 2) / 2)
    # ECE, 15 bins: member 1's confidences 0.8 (wrong) and 0.9 (right) sit in bins of their own
    assert second["ece"] == pytest.approx((0.8 + 0.1) / 2)

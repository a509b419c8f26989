"""Scoring a detection against the true noise mask, on hand-made masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossbench.detect.base import Detection, detection_scores


def _detection(flags, rate=None, T=None):
    flags = torch.tensor(flags, dtype=torch.bool)
    return Detection(
        flags=flags,
        scores=flags.float(),
        estimated_rate=float(flags.double().mean()) if rate is None else rate,
        estimated_T=T,
    )


def test_precision_recall_f1_on_a_hand_made_mask():
    truth = torch.tensor([1, 1, 1, 0, 0, 0, 0, 0], dtype=torch.bool)
    # flagged 0, 1, 3: two true positives of 3 flagged and 3 noisy
    s = detection_scores(_detection([1, 1, 0, 1, 0, 0, 0, 0]), truth, 3 / 8)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)
    assert s["flagged"] == 3 and s["estimated_rate"] == pytest.approx(3 / 8)
    assert s["rate_error"] == pytest.approx(0.0)


def test_auroc_is_the_share_of_noisy_clean_pairs_ranked_right():
    truth = torch.tensor([1, 1, 0, 0, 0], dtype=torch.bool)
    scores = torch.tensor([0.9, 0.4, 0.4, 0.2, 0.5])
    # pairs (noisy, clean): 0.9 beats all 3; 0.4 ties 0.4 (half), beats 0.2, loses to 0.5: 4.5 / 6
    found = Detection(flags=scores > 0.45, scores=scores, estimated_rate=0.4)
    assert detection_scores(found, truth, 0.4)["auroc"] == pytest.approx(4.5 / 6)
    assert np.isnan(detection_scores(found, torch.zeros(5, dtype=torch.bool), 0.0)["auroc"])


def test_edge_cases_nothing_flagged_and_nothing_noisy():
    clean = torch.zeros(4, dtype=torch.bool)
    s = detection_scores(_detection([0, 0, 0, 0]), clean, 0.0)
    assert (s["precision"], s["recall"], s["f1"]) == (1.0, 1.0, 1.0)
    s = detection_scores(_detection([0, 0, 0, 0]), torch.tensor([1, 0, 0, 0], dtype=torch.bool), 0.25)
    assert (s["precision"], s["recall"], s["f1"]) == (0.0, 0.0, 0.0)
    assert s["rate_error"] == pytest.approx(-0.25)
    s = detection_scores(_detection([1, 0, 0, 0]), clean, 0.0)
    assert (s["precision"], s["recall"], s["f1"]) == (0.0, 1.0, 0.0)


def test_transition_matrix_error_is_the_mean_absolute_error():
    est = np.array([[0.8, 0.2], [0.1, 0.9]])
    true = np.array([[0.6, 0.4], [0.0, 1.0]])
    s = detection_scores(_detection([0, 1], T=est), torch.tensor([0, 1], dtype=torch.bool), 0.5, true)
    assert s["T_mae"] == pytest.approx((0.2 + 0.2 + 0.1 + 0.1) / 4)
    assert "T_mae" not in detection_scores(
        _detection([0, 1]), torch.tensor([0, 1], dtype=torch.bool), 0.5, true
    )

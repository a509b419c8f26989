"""Dirichlet calibration against the authors' package (dirichletcal 0.5.3) on fixed data.

The package needs Python >= 3.12 and jax, so its fits on fixed data are stored in
data/dirichletcal_reference.json (written by scripts/make_dirichletcal_reference.py, which
calls FullDirichletCalibrator(reg_norm=True, ref_row=True); dirichletcal is MIT-licensed);
when the package imports here, the test also runs it live.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lossbench.calibrate.dirichlet import DirichletCalibration

REFERENCE = json.loads((Path(__file__).parent / "data" / "dirichletcal_reference.json").read_text())
LOGITS = torch.tensor(REFERENCE["logits"], dtype=torch.float64)
LABELS = torch.tensor(REFERENCE["labels"])


@pytest.mark.parametrize("fit", REFERENCE["fits"], ids=lambda f: f"lambda{f['reg_lambda']}-mu{f['reg_mu']}")
def test_matches_the_package_weights(fit):
    cal = DirichletCalibration(reg_lambda=fit["reg_lambda"], reg_mu=fit["reg_mu"], cv_grid=None)
    ours = cal.fit(LOGITS, LABELS)
    weights = np.asarray(fit["weights"])  # [C, C + 1]: W then b, relative to the last row
    assert np.abs(ours.params["W"].numpy() - weights[:, :-1]).max() < 1e-6
    assert np.abs(ours.params["b"].numpy() - weights[:, -1]).max() < 1e-6


def test_matches_the_package_live():
    dirichletcal = pytest.importorskip("dirichletcal")
    p = LOGITS.softmax(1).numpy()
    package = dirichletcal.FullDirichletCalibrator(reg_lambda=0.1, reg_mu=0.1, reg_norm=True, ref_row=True)
    package.fit(p, LABELS.numpy())
    ours = DirichletCalibration(reg_lambda=0.1, reg_mu=0.1, cv_grid=None).fit(LOGITS, LABELS)
    assert np.abs(ours(LOGITS).softmax(1).numpy() - package.predict_proba(p)).max() < 1e-6


def test_the_formula_q_is_softmax_of_w_log_p_plus_b():
    cal = DirichletCalibration(reg_lambda=0.01, reg_mu=0.01, cv_grid=None).fit(LOGITS, LABELS)
    W, b = cal.params["W"], cal.params["b"]
    expected = (LOGITS.log_softmax(1) @ W.T + b).softmax(1)
    assert torch.allclose(cal(LOGITS).softmax(1), expected, atol=1e-12)
    assert torch.all(W[-1] == 0) and b[-1] == 0  # ref_row: the last row is the reference


def test_paper_form_without_reference_row_reaches_its_own_minimum():
    c = LOGITS.shape[1]
    cal = DirichletCalibration(reg_lambda=1.0, reg_mu=0.5, ref_row=False, cv_grid=None).fit(LOGITS, LABELS)
    x = LOGITS.log_softmax(1)
    off = 1 - torch.eye(c, dtype=torch.float64)
    W = cal.params["W"].clone().requires_grad_(True)
    b = cal.params["b"].clone().requires_grad_(True)
    loss = (F.cross_entropy(x @ W.T + b, LABELS) + 1.0 / (c * (c - 1)) * ((W * off) ** 2).sum()
            + 0.5 / c * (b**2).sum())
    gw, gb = torch.autograd.grad(loss, (W, b))
    assert max(gw.abs().max().item(), gb.abs().max().item()) < 1e-7
    assert cal.params["W"][-1].abs().sum() > 0  # no reference row here


def test_cross_validation_picks_from_the_grid_and_records_it():
    cal = DirichletCalibration(cv_grid=[1e-3, 1.0, 100.0], cv_folds=3)
    fitted = cal.fit(LOGITS, LABELS)
    assert fitted.info["dir_reg_lambda"] in (1e-3, 1.0, 100.0)
    assert fitted.info["dir_reg_lambda"] == fitted.info["dir_reg_mu"]
    assert cal.min_samples(4) == 6
    with pytest.raises(ValueError, match="cv_folds must be >= 2"):
        DirichletCalibration(cv_folds=1)
    with pytest.raises(ValueError, match="calibrator dirichlet fits 20 parameters"):
        DirichletCalibration(cv_grid=None).check(19, 4)  # unregularised: C(C+1) samples needed

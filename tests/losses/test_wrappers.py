"""LogitClip: clipping maths, both conventions, and wrapping any registered loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from lossbench.losses import LOSSES


def _clip(**kw):
    return LOSSES.get("logit_clip")(**kw)


def test_hand_worked_paper_clip():
    # z = (3, 4, 0): ||z||_2 = 5. Clipped to delta = 2.5: (1.5, 2, 0).
    z = torch.tensor([[3.0, 4.0, 0.0]])
    loss = _clip(delta=2.5)
    torch.testing.assert_close(loss.clip(z), torch.tensor([[1.5, 2.0, 0.0]]))
    expected = -math.log(math.exp(2.0) / (math.exp(1.5) + math.exp(2.0) + 1.0))
    assert loss(z, torch.tensor([1])).item() == pytest.approx(expected, rel=1e-6)
    # Inside the ball nothing changes.
    torch.testing.assert_close(_clip(delta=6.0).clip(z), z)
    # L1 norm: ||z||_1 = 7 -> scaled by 3.5 / 7.
    torch.testing.assert_close(_clip(delta=3.5, p=1.0).clip(z), z / 2)


def test_hand_worked_code_convention():
    # Official code: an over-long vector is rescaled to norm 1/delta; delta = 2.5 -> norm 0.4.
    z = torch.tensor([[3.0, 4.0, 0.0], [0.3, 0.4, 0.0]])
    clipped = _clip(delta=2.5, convention="code").clip(z)
    torch.testing.assert_close(clipped, torch.tensor([[0.24, 0.32, 0.0], [0.3, 0.4, 0.0]]))
    # At delta = 1 the two conventions coincide.
    torch.manual_seed(0)
    z = 3 * torch.randn(16, 5)
    torch.testing.assert_close(_clip(delta=1.0, convention="code").clip(z), _clip(delta=1.0).clip(z))


def test_clipped_norm_is_bounded_and_identity_for_a_huge_delta():
    torch.manual_seed(1)
    z, y = 10 * torch.randn(32, 10), torch.randint(10, (32,))
    for delta in (0.5, 2.0):
        norms = torch.linalg.vector_norm(_clip(delta=delta).clip(z), dim=1)
        assert (norms <= delta * (1 + 1e-6)).all()
    for inner, kwargs in (("ce", {}), ("gce", {"q": 0.5}), ("focal", {"gamma": 2.0})):
        wrapped = _clip(inner=inner, delta=1e6, inner_kwargs=kwargs)
        torch.testing.assert_close(wrapped(z, y), LOSSES.get(inner)(**kwargs)(z, y))


def test_clipped_ce_is_bounded():
    """The paper's point: with ||z|| <= delta, CE <= log(1 + (C - 1) exp(2 delta))."""
    torch.manual_seed(2)
    z, y = 100 * torch.randn(64, 10), torch.randint(10, (64,))
    assert (_clip(delta=1.0)(z, y) <= math.log(1 + 9 * math.exp(2.0)) + 1e-5).all()
    assert F.cross_entropy(z, y, reduction="none").max() > 50


def test_wraps_any_loss_by_name_with_its_hyperparameters():
    torch.manual_seed(3)
    z, y = 3 * torch.randn(8, 4), torch.randint(4, (8,))
    loss = _clip(inner="gce", delta=2.0, inner_kwargs=OmegaConf.create({"q": 0.3}))
    assert loss.inner.q == 0.3
    torch.testing.assert_close(loss(z, y), LOSSES.get("gce")(q=0.3)(loss.clip(z), y))


def test_forwards_features_and_progress_to_the_inner_loss():
    loss = _clip(inner="bias_loss")
    assert loss.needs_features
    torch.manual_seed(4)
    z, y, f = 3 * torch.randn(8, 4), torch.randint(4, (8,)), torch.randn(8, 5)
    torch.testing.assert_close(loss(z, y, f), LOSSES.get("bias_loss")()(loss.clip(z), y, f))
    tgce = _clip(inner="tgce")
    tgce.on_epoch_start(0, 30)
    assert not tgce.inner.truncate
    tgce.on_epoch_start(29, 30)
    assert tgce.inner.truncate


def test_unknown_inner_lists_the_known_losses():
    with pytest.raises(ValueError) as info:
        _clip(inner="fcoal")
    message = str(info.value)
    assert "unknown logit_clip inner loss 'fcoal'" in message
    for name in ("ce", "focal", "gce", "nce_rce"):
        assert name in message


def test_hydra_overrides_reach_the_inner_loss():
    from hydra import compose, initialize_config_module

    from lossbench.lifecycle.builders import build_loss

    overrides = ["loss=logit_clip", "loss.inner=gce", "loss.inner_kwargs={q: 0.3}", "loss.delta=2.0"]
    with initialize_config_module(config_module="lossbench.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    loss = build_loss(cfg.loss, 10)
    assert loss.inner_name == "gce" and loss.inner.q == 0.3 and loss.delta == 2.0

"""Menon et al. 2020's losses: PHuber-CE, PHuber-GCE, Linear and CE + clipping, on hand-worked numbers
and against the [Re] code's maths (dmizr/phuber phuber/loss.py, re-derived below from softmax)."""

from __future__ import annotations

import math

import pytest
import torch

from lossbench.losses import LOSSES
from lossbench.train.objective import clip_norm

# Logits log(1), log(2), log(5): p = (1/8, 2/8, 5/8) exactly; labels 2 (p_y = 5/8) and 0 (p_y = 1/8).
Z = torch.tensor([[math.log(v) for v in (1, 2, 5)]] * 2, dtype=torch.float64)
Y = torch.tensor([2, 0])


def _two_class(p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of two classes whose softmax gives the true class (0) probability ``p``."""
    return torch.tensor([[math.log(p), math.log(1 - p)]], dtype=torch.float64), torch.tensor([0])


def _code_phuber_ce(z: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
    """The [Re] code's PHuber-CE maths: p = softmax(z)_y; -tau p + log(tau) + 1 where p <= 1/tau, else
    -log(p) (the log of the softmax)."""
    p = z.softmax(1).gather(1, y[:, None]).squeeze(1)
    return torch.where(p <= 1 / tau, -tau * p + math.log(tau) + 1, -torch.log(p))


def _code_phuber_gce(z: torch.Tensor, y: torch.Tensor, tau: float, q: float) -> torch.Tensor:
    """The [Re] code's PHuber-GCE maths: threshold p* = tau^(1/(q-1)), boundary tau p* + (1 - p*^q)/q;
    -tau p + boundary where p <= p*, else (1 - p^q)/q."""
    p = z.softmax(1).gather(1, y[:, None]).squeeze(1)
    p_star = tau ** (1 / (q - 1))
    return torch.where(p <= p_star, -tau * p + tau * p_star + (1 - p_star**q) / q, (1 - p**q) / q)


def test_phuber_ce_hand_worked():
    loss = LOSSES.get("phuber_ce")(tau=4.0)  # threshold 1/4: p_y = 1/8 is on the line, 5/8 on -log
    expected = [-math.log(5 / 8), -4 * (1 / 8) + math.log(4) + 1]
    torch.testing.assert_close(loss(Z, Y), torch.tensor(expected, dtype=torch.float64))
    # at the default tau = 10 (threshold 0.1) both are plain cross-entropy
    torch.testing.assert_close(LOSSES.get("phuber_ce")()(Z, Y), -torch.tensor([5 / 8, 1 / 8]).log().double())


def test_phuber_gce_hand_worked():
    loss = LOSSES.get("phuber_gce")(tau=2.0, q=0.5)  # p* = 2^(1/(0.5-1)) = 1/4; offset 2/4 + (1-1/2)/0.5
    assert loss.p_star == pytest.approx(0.25) and loss.offset == pytest.approx(1.5)
    expected = [2 * (1 - math.sqrt(5 / 8)), -2 * (1 / 8) + 1.5]
    torch.testing.assert_close(loss(Z, Y), torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize("tau", [1.5, 2.0, 10.0, 50.0])
def test_phuber_ce_equals_the_code_and_is_continuous_with_bounded_slope(tau):
    g = torch.Generator().manual_seed(0)
    z, y = 4 * torch.randn(256, 10, generator=g, dtype=torch.float64), torch.randint(10, (256,), generator=g)
    loss = LOSSES.get("phuber_ce")(tau=tau)
    torch.testing.assert_close(loss(z, y), _code_phuber_ce(z, y, tau))
    # value and slope in p_y are continuous at 1/tau, and the slope never exceeds tau in size
    eps = 1e-6
    values = [loss(*_two_class(p)).item() for p in (1 / tau - eps, 1 / tau, 1 / tau + eps)]
    assert values[0] - values[1] == pytest.approx(tau * eps, rel=1e-4)
    assert values[1] - values[2] == pytest.approx(tau * eps, rel=1e-4)
    for p in (1e-4, 0.5 / tau, 0.9 / tau, 0.5, 0.99):
        slope = (loss(*_two_class(p + 1e-7)).item() - loss(*_two_class(p)).item()) / 1e-7
        assert -tau * (1 + 1e-4) <= slope < 0


@pytest.mark.parametrize("tau, q", [(10.0, 0.7), (2.0, 0.5), (3.0, 0.3)])
def test_phuber_gce_equals_the_code_and_is_continuous(tau, q):
    g = torch.Generator().manual_seed(1)
    z, y = 6 * torch.randn(256, 10, generator=g, dtype=torch.float64), torch.randint(10, (256,), generator=g)
    loss = LOSSES.get("phuber_gce")(tau=tau, q=q)
    torch.testing.assert_close(loss(z, y), _code_phuber_gce(z, y, tau, q))
    p_star, eps = loss.p_star, 1e-9
    below, at, above = (loss(*_two_class(p)).item() for p in (p_star - eps, p_star, p_star + eps))
    assert below - at == pytest.approx(tau * eps, rel=1e-3)
    assert at - above == pytest.approx(tau * eps, rel=1e-3)


def test_phuber_losses_refuse_out_of_range_settings():
    with pytest.raises(ValueError, match="phuber_ce needs tau > 1"):
        LOSSES.get("phuber_ce")(tau=1.0)
    with pytest.raises(ValueError, match="phuber_gce needs q in \\(0, 1\\)"):
        LOSSES.get("phuber_gce")(q=1.0)
    with pytest.raises(ValueError, match="ce_clip needs max_norm > 0"):
        LOSSES.get("ce_clip")(max_norm=0)


def test_linear_is_one_minus_p_y_and_mae_at_scale_one():
    expected = torch.tensor([3 / 8, 7 / 8], dtype=torch.float64)
    torch.testing.assert_close(LOSSES.get("linear")()(Z, Y), expected)
    g = torch.Generator().manual_seed(2)
    z, y = 3 * torch.randn(64, 10, generator=g), torch.randint(10, (64,), generator=g)
    torch.testing.assert_close(LOSSES.get("linear")()(z, y), LOSSES.get("mae")(scale=1.0)(z, y))


def test_ce_clip_is_cross_entropy_with_a_declared_clip():
    z, y = Z.float(), Y
    torch.testing.assert_close(LOSSES.get("ce_clip")()(z, y), LOSSES.get("ce")()(z, y))
    ce, ce_clip = LOSSES.get("ce")(), LOSSES.get("ce_clip")()
    assert clip_norm(None, ce) is None and clip_norm(1.0, ce) == 1.0
    assert clip_norm(None, ce_clip) == 0.1 and clip_norm(5.0, ce_clip) == 0.1
    assert clip_norm(0.05, ce_clip) == 0.05

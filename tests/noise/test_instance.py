"""Instance-dependent noise (Xia et al. 2020): rates, T, dependence on the features."""

import math

import pytest
import torch

from lossbench import noise
from lossbench.data.digits import digits
from lossbench.noise.base import expected_noise_rate, uniform
from lossbench.noise.instance import InstanceDependent, truncated_normal, truncated_normal_mean

N, D, C = 20_000, 20, 10


def features(seed: int, n: int = N) -> torch.Tensor:
    return uniform(torch.Generator().manual_seed(seed), n, D) * 2 - 1


@pytest.mark.parametrize("rate", [0.2, 0.4])
def test_realized_rate_and_T_within_sampling_error(rate, gen, nt):
    y = nt.shuffled_labels(N, C)
    noisy = InstanceDependent(rate)(y, C, features(1), gen(3))
    p = expected_noise_rate(noisy.expected_T, y)  # the mean of the per-sample flip rates q_n
    assert nt.within_binomial(noisy.rate, p, N)
    # q_n ~ N(rate, 0.1^2) truncated to [0, 1]: its mean, within 4 sds of a mean of N draws
    assert abs(p - truncated_normal_mean(rate, 0.1)) <= 4 * 0.1 / math.sqrt(N)
    nt.assert_T_close(noisy.realized_T, noisy.expected_T, y)
    assert (noisy.expected_T >= 0).all() and noisy.expected_T.sum(1) == pytest.approx(1.0)


def test_truncated_normal_draws():
    u = uniform(torch.Generator().manual_seed(0), 50_000)
    q = truncated_normal(u, 0.05, 0.1)
    assert 0 <= q.min() and q.max() <= 1
    assert q.mean().item() == pytest.approx(truncated_normal_mean(0.05, 0.1), abs=4 * 0.1 / math.sqrt(5e4))
    assert truncated_normal_mean(0.2, 0.1) == pytest.approx(0.2055, abs=1e-4)


def test_flips_depend_on_the_features(gen, nt):
    y = nt.shuffled_labels(N, C)
    model = InstanceDependent(0.4)
    a = model(y, C, features(1), gen(3))
    b = model(y, C, features(2), gen(3))
    assert not torch.equal(a.y_noisy, b.y_noisy)
    assert torch.equal(model(y, C, features(1), gen(3)).y_noisy, a.y_noisy)
    # the same seed draws the same flip rates; only where the labels go differs
    assert (a.is_noisy == b.is_noisy).float().mean() > 0.6


def test_rows_are_a_function_of_class_and_input(gen):
    x = features(5, 4).repeat(2, 1)  # rows 0-3 equal rows 4-7
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    rows = InstanceDependent(0.3, std=1e-9).transition_rows(y, C, x, gen())
    assert torch.allclose(rows[:4], rows[4:], atol=1e-6)
    assert torch.allclose(rows[torch.arange(8), y], torch.full((8,), 0.7, dtype=torch.float64), atol=1e-6)
    assert not torch.allclose(rows[0], rows[1])


def test_uint8_images_and_apply_on_digits(gen):
    x = (uniform(gen(1), 500, 1, 8, 8) * 255).to(torch.uint8)
    y = torch.arange(500) % 10
    assert InstanceDependent(0.4)(y, 10, x, gen()).is_noisy.any()
    split, noisy = noise.apply(InstanceDependent(0.4), digits(), seed=0)
    assert 0.2 < noisy.rate < 0.6 and torch.equal(split.y_train_noisy, noisy.y_noisy[split.train_idx])


def test_refusals(gen):
    with pytest.raises(ValueError, match="needs the training features"):
        InstanceDependent(0.2)(torch.zeros(3, dtype=torch.long), 10, None, gen())
    with pytest.raises(ValueError, match="got 2 feature rows for 3 labels"):
        InstanceDependent(0.2)(torch.zeros(3, dtype=torch.long), 10, torch.zeros(2, 4), gen())
    with pytest.raises(ValueError, match="std > 0"):
        InstanceDependent(0.2, std=0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        InstanceDependent(1.0)


def test_pinned_noisy_labels(gen, nt):
    y = nt.shuffled_labels(N, C)
    noisy = InstanceDependent(0.4)(y, C, features(7), gen(2026))
    assert nt.label_hash(noisy.y_noisy) == "9ca0b8b7e6da7304"

"""The noise contract: random draws, categorical sampling, rate checks, noise.apply."""

import numpy as np
import pytest
import torch

from lossbench import noise
from lossbench.data.digits import digits
from lossbench.noise.base import (
    check_rate,
    draw_categorical,
    expected_noise_rate,
    realized_transition,
    uniform,
)
from lossbench.noise.synthetic import Symmetric


def test_uniform_is_a_pure_function_of_the_seed(gen):
    a, b = uniform(gen(3), 1000), uniform(gen(3), 1000)
    assert torch.equal(a, b) and a.dtype == torch.float64
    assert 0 < a.min() and a.max() < 1
    assert not torch.equal(a, uniform(gen(4), 1000))


def test_draw_categorical_follows_the_rows_and_never_draws_a_zero(gen, nt):
    n = 40_000
    probs = torch.tensor([[0.0, 0.3, 0.0, 0.7], [0.5, 0.0, 0.5, 0.0]], dtype=torch.float64)
    rows = probs[torch.arange(n) % 2]
    drawn = draw_categorical(rows, uniform(gen(), n))
    for r in range(2):
        counts = torch.bincount(drawn[r::2], minlength=4).double() / (n // 2)
        assert (counts[probs[r] == 0] == 0).all()
        for j in torch.nonzero(probs[r]).squeeze(1):
            assert nt.within_binomial(counts[j].item(), probs[r, j].item(), n // 2)


def test_draw_categorical_edges():
    probs = torch.tensor([[0.2, 0.8, 0.0]] * 3, dtype=torch.float64)
    u = torch.tensor([0.0, 0.2, 1 - 2.0**-53], dtype=torch.float64)
    assert draw_categorical(probs, u).tolist() == [0, 1, 1]


def test_realized_transition_and_expected_rate():
    y = torch.tensor([0, 0, 1, 1])
    t = realized_transition(y, torch.tensor([0, 1, 1, 1]), 3)
    assert np.allclose(t, [[0.5, 0.5, 0], [0, 1, 0], [0, 0, 0]])
    assert expected_noise_rate(np.array([[0.5, 0.5], [0.1, 0.9]]), y) == pytest.approx(0.3)


@pytest.mark.parametrize("bad", [1.0, 1.5, -0.1, float("nan"), "0.2", True, None])
def test_rate_outside_0_1_is_refused(bad):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        check_rate(bad)


def test_rate_one_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="no clean label would be left"):
        Symmetric(1.0)


def test_cuda_generator_is_refused():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    with pytest.raises(ValueError, match="CPU"):
        Symmetric(0.2)(torch.zeros(4, dtype=torch.long), 2, None, torch.Generator(device="cuda"))


def test_apply_corrupts_the_pool_in_original_order_and_leaves_test_alone():
    split = digits()
    noisy_split, noisy = noise.apply(Symmetric(0.4), split, seed=5)
    assert torch.equal(noisy_split.y_test, split.y_test)
    assert torch.equal(noisy_split.y_train_noisy, noisy.y_noisy[split.train_idx])
    assert torch.equal(noisy_split.y_val_noisy, noisy.y_noisy[split.val_idx])
    assert torch.equal(noisy.is_noisy, noisy.y_noisy != split.pool_labels())
    again = noise.apply(Symmetric(0.4), digits(), seed=5)[1]
    assert torch.equal(again.y_noisy, noisy.y_noisy)


def test_apply_checks_before_drawing():
    class Refuses(Symmetric):
        def corrupt(self, *args):
            raise AssertionError("corrupt ran before check refused")

    with pytest.raises(ValueError, match="no more likely"):
        noise.apply(Refuses(0.95), digits(), seed=0)

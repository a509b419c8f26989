"""LeNet-5 of the [Re] reproduction of Menon et al. 2020: architecture, initialisation, packing."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from lossbench.models.lenet import LeNet5
from lossbench.models.packing import PackedModel

MNIST = (1, 28, 28)


def _reference_forward(model: LeNet5, x: torch.Tensor) -> torch.Tensor:
    """The [Re] code's LeNet.forward (dmizr/phuber phuber/network.py), written out with the weights of
    ``model``: conv1 (pad 2) - ReLU - avgpool 2, conv2 - ReLU - avgpool 2, flatten, fc1 - ReLU - fc2 -
    ReLU - fc3."""
    conv1, conv2 = model.body[0], model.body[3]
    fc1, fc2, fc3 = model.body[7], model.body[9], model.head
    h = F.avg_pool2d(F.relu(F.conv2d(x, conv1.weight, conv1.bias, padding=2)), 2)
    h = F.avg_pool2d(F.relu(F.conv2d(h, conv2.weight, conv2.bias)), 2)
    h = torch.flatten(h, 1)
    h = F.relu(F.linear(h, fc1.weight, fc1.bias))
    h = F.relu(F.linear(h, fc2.weight, fc2.bias))
    return F.linear(h, fc3.weight, fc3.bias)


def test_lenet5_is_the_reproductions_architecture():
    model = LeNet5(MNIST, 10)
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (120, 400), (120,), (84, 120), (84,),
                      (10, 84), (10,)]
    assert sum(p.numel() for p in model.parameters()) == 61_706 and model.feature_dim == 84
    x = torch.randn(5, *MNIST)
    torch.testing.assert_close(model(x), _reference_forward(model, x), rtol=0, atol=0)


@pytest.mark.parametrize("init, std", [
    # a standard normal truncated to [-a, a], a = 0.2: var = 1 - 2 a phi(a) / (2 Phi(a) - 1)
    ("code", math.sqrt(1 - 2 * 0.2 * stats.norm.pdf(0.2) / (2 * stats.norm.cdf(0.2) - 1))),
    # N(0, 0.1^2) truncated at 2 std: var = 0.01 (1 - 2 * 2 phi(2) / (2 Phi(2) - 1))
    ("truncated_normal", 0.1 * math.sqrt(1 - 4 * stats.norm.pdf(2) / (2 * stats.norm.cdf(2) - 1))),
])
def test_lenet5_weights_follow_the_named_truncated_normal(init, std):
    torch.manual_seed(0)
    model = LeNet5(MNIST, 10, init=init)
    weights = torch.cat([m.weight.detach().flatten() for m in model.modules()
                         if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))])
    assert weights.abs().max() <= 0.2
    assert abs(weights.std().item() - std) < 0.003  # 61,000 draws: the std's own spread is about 3e-4
    # the same distribution as scipy.stats.truncnorm(-0.2, 0.2) (the code's draw): a KS test
    if init == "code":
        assert stats.kstest(weights[:5000].double().numpy(), stats.truncnorm(-0.2, 0.2).cdf).pvalue > 1e-3
    # biases keep PyTorch's default: uniform in +-1/sqrt(fan_in)
    assert model.body[0].bias.abs().max() <= 1 / math.sqrt(25)


def test_lenet5_refuses_an_unknown_init_and_small_images():
    with pytest.raises(ValueError, match="unknown lenet5 init 'he'; known: code, truncated_normal, torch"):
        LeNet5(MNIST, 10, init="he")
    with pytest.raises(ValueError, match="at least 12x12"):
        LeNet5((1, 8, 8), 10)


def test_lenet5_packs_as_grouped_layers_with_each_members_outputs():
    torch.manual_seed(0)
    models = [LeNet5(MNIST, 10) for _ in range(3)]
    packed = PackedModel(models)
    assert packed.grouped  # average pooling is a grouped layer
    x = torch.randn(3, 4, *MNIST)
    out = packed(x)
    for k, model in enumerate(models):
        torch.testing.assert_close(out[k], model(x[k]), rtol=1e-5, atol=1e-6)


def test_a_channels_last_pack_runs_nhwc_and_equals_its_members(monkeypatch):
    """trainer.channels_last: the members' conv weights are NHWC, so the pack's convolutions take NHWC
    input and weights too; each member's logits and gradients are its lone model's."""
    torch.manual_seed(0)
    models = [LeNet5(MNIST, 10).to(memory_format=torch.channels_last) for _ in range(4)]
    packed = PackedModel(models)
    assert packed.channels_last and packed.grouped
    seen = []
    conv = F.conv2d

    def recording(x, weight, *args, **kwargs):
        seen.append((x.is_contiguous(memory_format=torch.channels_last),
                     weight.is_contiguous(memory_format=torch.channels_last)))
        return conv(x, weight, *args, **kwargs)

    monkeypatch.setattr(F, "conv2d", recording)
    x = torch.randn(4, 3, *MNIST)
    out = packed(x)
    monkeypatch.setattr(F, "conv2d", conv)
    assert seen == [(True, True), (True, True)]
    out.square().sum().backward()
    for k, model in enumerate(models):
        logits = model(x[k])
        torch.testing.assert_close(out[k], logits, rtol=1e-5, atol=1e-6)
        names = [n for n, _ in model.named_parameters()]
        grads = torch.autograd.grad(logits.square().sum(), list(model.parameters()))
        for name, g in zip(names, grads, strict=True):
            torch.testing.assert_close(packed.params[name].grad[k], g, rtol=1e-4, atol=1e-5)

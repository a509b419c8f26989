"""ResNet-50 in the CIFAR form: torchvision's resnet50 layers with a 3x3 stride-1 stem and no max-pool."""

from __future__ import annotations

import pytest
import torch
import torchvision
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lossbench.conf import CONF_DIR
from lossbench.models.resnet import Bottleneck

CIFAR = (3, 32, 32)


def build(num_classes: int = 10):
    return instantiate(OmegaConf.load(CONF_DIR / "model" / "resnet50.yaml"))(CIFAR, num_classes)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("num_classes", [10, 100])
def test_resnet50_is_torchvision_resnet50_with_the_cifar_stem(num_classes):
    ours = build(num_classes)
    ref = torchvision.models.resnet50(num_classes=num_classes)
    # torchvision's stem is conv7x7(3 -> 64); ours conv3x3(3 -> 64); every other parameter is shared
    assert _params(ours) == _params(ref) - 3 * 64 * 7 * 7 + 3 * 64 * 3 * 3
    assert ours.feature_dim == 2048
    ref_stages = [getattr(ref, f"layer{i}") for i in range(1, 5)]
    ours_blocks = [m for m in ours.modules() if isinstance(m, Bottleneck)]
    ref_blocks = [b for stage in ref_stages for b in stage]
    assert len(ours_blocks) == len(ref_blocks) == 16
    for mine, theirs in zip(ours_blocks, ref_blocks, strict=True):
        for a, b in (("conv1", "conv1"), ("conv2", "conv2"), ("conv3", "conv3")):
            ca, cb = getattr(mine, a), getattr(theirs, b)
            assert ca.weight.shape == cb.weight.shape and ca.stride == cb.stride
        has_projection = isinstance(mine.shortcut, torch.nn.Sequential)
        assert has_projection == (theirs.downsample is not None)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in ours.modules())


def test_resnet50_cifar_resolution_and_gradients():
    torch.manual_seed(0)
    model = build(10)
    x = torch.randn(2, *CIFAR)
    logits, features = model(x, return_features=True)
    assert logits.shape == (2, 10) and features.shape == (2, 2048)
    # stride 1 stem, then strides 1, 2, 2, 2: the last stage sees 4x4 maps of a 32x32 image
    maps = model.body[:-2](x)
    assert maps.shape == (2, 2048, 4, 4)
    logits.logsumexp(1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())

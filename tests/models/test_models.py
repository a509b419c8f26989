"""Every model: forward and backward on each input shape it supports, features, configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from hydra.utils import get_object, instantiate
from omegaconf import OmegaConf

from lossbench.conf import CONF_DIR
from lossbench.models import MODELS, Classifier

CONF = CONF_DIR / "model"
DIGITS, MNIST, CIFAR = (64,), (1, 28, 28), (3, 32, 32)

# (config name, overrides of its YAML, input shapes it supports)
CASES = [
    ("mlp", {}, [DIGITS, MNIST, CIFAR]),
    ("mlp", {"hidden": [2], "batch_norm": True, "activation": "sigmoid"}, [DIGITS]),
    ("linear", {}, [DIGITS, MNIST]),
    ("ldr_mlp", {}, [DIGITS, MNIST]),
    ("cnn4", {}, [MNIST, CIFAR]),
    ("cnn8", {}, [MNIST, CIFAR]),
    ("lenet5", {}, [MNIST, CIFAR]),
    ("resnet18", {}, [MNIST, CIFAR]),
    ("resnet34", {}, [MNIST, CIFAR]),
    ("preact_resnet18", {}, [MNIST, CIFAR]),
    ("wrn28_10", {}, [CIFAR]),  # heavy: one tiny batch at the published shape
    ("wrn28_10", {"depth": 16, "width": 2}, [MNIST, CIFAR]),
    ("timm", {"name": "resnet18"}, [MNIST, CIFAR]),
    ("timm", {"name": "vit_tiny_patch16_224", "kwargs": {"img_size": 32, "patch_size": 8}}, [CIFAR]),
]


def build(name: str, overrides: dict, input_shape, num_classes: int) -> Classifier:
    """The model as `lossbench run` builds it: instantiate(cfg.model)(input_shape, num_classes)."""
    cfg = OmegaConf.merge(OmegaConf.load(CONF / f"{name}.yaml"), overrides)
    return instantiate(cfg)(input_shape, num_classes)


@pytest.mark.parametrize(
    "name, overrides, shape",
    [pytest.param(n, o, s, id="-".join([n, *map(str, o.values()), "x".join(map(str, s))]))
     for n, o, shapes in CASES for s in shapes],
)
def test_forward_backward(name, overrides, shape):
    torch.manual_seed(0)
    model = build(name, overrides, shape, num_classes=7)
    assert isinstance(model, Classifier) and type(model).registry_name == name
    x = torch.randn(2, *shape)
    logits, features = model(x, return_features=True)
    assert logits.shape == (2, 7)
    assert features.shape == (2, model.feature_dim)
    assert torch.equal(model(x), logits)
    logits.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_linear_is_one_affine_map():
    model = build("linear", {}, (4,), num_classes=3)
    assert sum(p.numel() for p in model.parameters()) == 4 * 3 + 3
    x = torch.randn(5, 4)
    assert torch.allclose(model(x), x @ model.head.weight.T + model.head.bias)


def test_ldr_mlp_is_the_official_ffnn():
    """Two tanh layers of width min(d, C) (models.py MLP: linear_1 d->h, linear_2 h->h, linear h->C), every
    weight xavier-normal: std sqrt(2 / (fan_in + fan_out))."""
    torch.manual_seed(0)
    model = build("ldr_mlp", {}, (16,), num_classes=26)  # letter: h = 16
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(16, 16), (16, 16), (26, 16)]
    assert [type(m).__name__ for m in model.body] == ["Flatten", "Linear", "Tanh", "Linear", "Tanh"]
    assert build("ldr_mlp", {}, (10,), num_classes=11).feature_dim == 10  # vowel: h = min(10, 11)
    wide = build("ldr_mlp", {"width": 400}, (300,), num_classes=300)
    w = wide.body[3].weight
    assert w.std().item() == pytest.approx((2 / 800) ** 0.5, rel=0.02)
    x = torch.randn(3, 16)
    h = torch.tanh(linears[1](torch.tanh(linears[0](x))))
    assert torch.allclose(model(x), linears[2](h))
    with pytest.raises(ValueError, match="activation must be tanh or relu"):
        build("ldr_mlp", {"activation": "gelu"}, (4,), 3)


def test_float64_models_take_float32_input():
    """trainer.dtype=float64 holds the parameters in float64; float32 features are cast to it."""
    model = build("ldr_mlp", {}, (4,), num_classes=3).double()
    out = model(torch.randn(2, 4))
    assert out.dtype == torch.float64


def test_cnn4_is_the_published_architecture():
    model = build("cnn4", {}, MNIST, 10)
    # conv 1->32, BN, conv 32->64, BN, FC 64*7*7->128, BN, FC 128->10
    expected = (32 * 9 + 32) + 64 + (64 * 32 * 9 + 64) + 128 + (3136 * 128 + 128) + 256 + (128 * 10 + 10)
    assert _params(model) == expected and model.feature_dim == 128
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) == 2 and len(linears) == 2


def test_cnn8_is_the_published_architecture():
    model = build("cnn8", {}, CIFAR, 10)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 196, 196]
    assert [(m.in_features, m.out_features) for m in linears] == [(196 * 4 * 4, 256), (256, 10)]


@pytest.mark.parametrize("name, count", [
    ("resnet18", 11_173_962),         # the usual CIFAR ResNet-18 for 10 classes
    ("resnet34", 21_282_122),
    ("preact_resnet18", 11_172_170),  # 11,171,146 + the final BN (2 x 512)
])
def test_resnet_sizes(name, count):
    model = build(name, {}, CIFAR, 10)
    assert _params(model) == count and model.feature_dim == 512
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    stem = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1)


def test_wrn28_10_size():
    model = build("wrn28_10", {}, CIFAR, 10)
    assert model.feature_dim == 640 and abs(_params(model) - 36.5e6) < 0.1e6


def test_wide_resnet_refuses_bad_depth():
    with pytest.raises(ValueError, match="6n \\+ 4"):
        build("wrn28_10", {"depth": 27}, CIFAR, 10)


@pytest.mark.parametrize("name", ["cnn4", "cnn8", "resnet18", "preact_resnet18", "wrn28_10", "timm"])
def test_image_models_refuse_feature_inputs(name):
    with pytest.raises(ValueError, match="model=mlp"):
        build(name, {}, DIGITS, 10)


def test_timm_refuses_unknown_and_misfit_architectures():
    with pytest.raises(ValueError, match="unknown timm architecture 'resnet_18'"):
        build("timm", {"name": "resnet_18"}, CIFAR, 10)
    with pytest.raises(ValueError, match="img_size"):
        build("timm", {"name": "vit_tiny_patch16_224"}, CIFAR, 10)


def test_timm_uses_dataset_channels_and_our_head():
    model = build("timm", {"name": "resnet18"}, MNIST, 3)
    stem = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert stem.in_channels == 1
    assert model.head.out_features == 3 and model.feature_dim == 512
    assert model.body.model.num_classes == 0  # timm's own classifier is removed


def _model_yamls() -> list[Path]:
    return sorted(CONF.glob("*.yaml"))


@pytest.mark.parametrize("path", _model_yamls(), ids=lambda p: p.stem)
def test_model_yaml_targets_its_registered_class(path):
    cfg = yaml.safe_load(path.read_text())
    cls = get_object(cfg["_target_"])
    assert cls is MODELS.get(path.stem) and cfg["_partial_"] is True


def test_every_registered_model_has_a_yaml():
    assert set(MODELS.names()) == {p.stem for p in _model_yamls()}

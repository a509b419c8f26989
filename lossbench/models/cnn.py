"""The small CNNs of Ma et al. 2020 (Normalized Loss Functions): cnn4 for MNIST, cnn8 for CIFAR-10."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from lossbench.models.base import Classifier, register_model


def image_shape(model: str, input_shape: Sequence[int], min_size: int = 1) -> tuple[int, int, int]:
    """``input_shape`` as (C, H, W), or an error saying what the model needs."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3:
        raise ValueError(
            f"model '{model}' needs image input [C, H, W], got {list(shape)}; "
            f"use model=mlp for feature datasets"
        )
    if min(shape[1:]) < min_size:
        raise ValueError(f"model '{model}' needs images of at least {min_size}x{min_size}, got {list(shape)}")
    return shape  # type: ignore[return-value]


def conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    """3x3 convolution (padding 1, with bias) -> BatchNorm -> ReLU."""
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class _ConvNet(Classifier):
    """Conv stages (each: conv-BN-ReLU blocks, then 2x2 max-pool) -> flatten -> FC-BN-ReLU -> head."""

    def __init__(
        self,
        name: str,
        input_shape: Sequence[int],
        num_classes: int,
        stages: Sequence[Sequence[int]],
        hidden: int,
    ) -> None:
        c, h, w = image_shape(name, input_shape, min_size=2 ** len(stages))
        layers: list[nn.Module] = []
        for stage in stages:
            for width in stage:
                layers += conv_bn_relu(c, width)
                c = width
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        layers += [nn.Flatten(), nn.Linear(c * h * w, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        super().__init__(nn.Sequential(*layers), hidden, num_classes)
        for m in self.modules():  # the initialization of the official code
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)


@register_model("cnn4")
class CNN4(_ConvNet):
    """The 4-layer MNIST CNN of Ma et al. 2020, "Normalized Loss Functions for Deep
    Learning with Noisy Labels" (ICML), as in its official code:
    conv3x3(32)-BN-ReLU-maxpool, conv3x3(64)-BN-ReLU-maxpool, FC(128)-BN-ReLU, FC(C).
    The four layers are the two convolutions and the two fully connected ones;
    features are the 128-d FC output. Any [C, H, W] with H, W >= 4 (1x28x28 as
    published, 3x32x32 also works: FC input 64*8*8).
    """

    def __init__(
        self, input_shape: Sequence[int], num_classes: int,
        channels: Sequence[int] = (32, 64), hidden: int = 128,
    ) -> None:
        super().__init__("cnn4", input_shape, num_classes, [[c] for c in channels], hidden)


@register_model("cnn8")
class CNN8(_ConvNet):
    """The 8-layer CIFAR-10 CNN of Ma et al. 2020 (after Wang et al. 2019, SCE), official code:
    three stages of two conv3x3-BN-ReLU (64, 128, 196 channels) each followed by a
    2x2 max-pool, then FC(256)-BN-ReLU and FC(C): 6 conv + 2 FC layers; features
    are the 256-d FC output. Any [C, H, W] with H, W >= 8 (3x32x32 as published:
    FC input 196*4*4; 1x28x28 gives 196*3*3).
    """

    def __init__(
        self, input_shape: Sequence[int], num_classes: int,
        channels: Sequence[int] = (64, 128, 196), hidden: int = 256,
    ) -> None:
        super().__init__("cnn8", input_shape, num_classes, [[c, c] for c in channels], hidden)

"""ResNets in the CIFAR form (3x3 stem, no max-pool): resnet18, resnet34, resnet50, preact_resnet18."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from lossbench.models.base import Classifier, register_model
from lossbench.models.cnn import image_shape
from lossbench.models.dropout import Dropout


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


def shortcut(c_in: int, c_out: int, stride: int) -> nn.Module:
    """The identity, or a 1x1 convolution-BN projection where the shape changes."""
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN projection) shortcut, ReLU after the sum."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv3x3(c_in, c_out, stride), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = conv3x3(c_out, c_out), nn.BatchNorm2d(c_out)
        self.shortcut = shortcut(c_in, c_out, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class Bottleneck(nn.Module):
    """conv1x1(planes)-BN-ReLU, conv3x3(planes, stride)-BN-ReLU, conv1x1(4 planes)-BN, plus the identity
    (or 1x1 conv-BN projection) shortcut, ReLU after the sum (He et al. 2016). The stride sits on the 3x3
    convolution, as in torchvision's ResNet-50 and the CIFAR code of Ma et al. 2020 and Mukhoti et al.
    2020."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int) -> None:
        super().__init__()
        c_out = planes * self.expansion
        self.conv1, self.bn1 = nn.Conv2d(c_in, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes, stride), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
        self.shortcut = shortcut(c_in, c_out, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-(dropout)-BN-ReLU-conv3x3; the shortcut (projection when the shape
    changes) leaves from the first BN-ReLU, and nothing follows the sum (He et al. 2016,
    "Identity Mappings"). Dropout between the convolutions is the wide ResNet's."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), conv3x3(c_in, c_out, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), conv3x3(c_out, c_out)
        self.dropout = Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shortcut: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pre = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(pre)
        out = self.dropout(self.conv1(pre))
        out = self.conv2(F.relu(self.bn2(out), inplace=True))
        return out + skip


class ResNet(Classifier):
    """CIFAR-form ResNet: conv3x3(64) stem at stride 1, no max-pool, four stages of
    blocks (64, 128, 256, 512 channels, times the block's expansion; strides 1, 2, 2, 2), global
    average pool. Features are the pooled output (512-d, 2048-d for Bottleneck blocks). Works on any
    [C, H, W] image
    (3x32x32 as in the CIFAR literature; 1x28x28 too).
    """

    block: type[nn.Module] = BasicBlock
    preact: bool = False

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        blocks: Sequence[int] = (2, 2, 2, 2),
        widths: Sequence[int] = (64, 128, 256, 512),
    ) -> None:
        name = getattr(type(self), "registry_name", "resnet")
        c = image_shape(name, input_shape)[0]
        layers: list[nn.Module] = [conv3x3(c, widths[0])]
        if not self.preact:
            layers += [nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
        c = widths[0]
        for stage, (n, width) in enumerate(zip(blocks, widths, strict=True)):
            for i in range(n):
                layers.append(self.block(c, width, 2 if stage > 0 and i == 0 else 1))
                c = width * getattr(self.block, "expansion", 1)
        if self.preact:  # the final BN-ReLU of a pre-activation net
            layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        super().__init__(nn.Sequential(*layers), c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


@register_model("resnet18")
class ResNet18(ResNet):
    """ResNet-18 (He et al. 2016, "Deep Residual Learning for Image Recognition") in the
    CIFAR form: BasicBlocks [2, 2, 2, 2], 11.2M parameters for 10 classes."""


@register_model("resnet34")
class ResNet34(ResNet):
    """ResNet-34 (He et al. 2016) in the CIFAR form: BasicBlocks [3, 4, 6, 3]; the CIFAR-100
    network of Ma et al. 2020."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        blocks: Sequence[int] = (3, 4, 6, 3),
        widths: Sequence[int] = (64, 128, 256, 512),
    ) -> None:
        super().__init__(input_shape, num_classes, blocks, widths)


@register_model("resnet50")
class ResNet50(ResNet):
    """ResNet-50 (He et al. 2016) in the CIFAR form: Bottleneck blocks [3, 4, 6, 3] (expansion 4, so
    2048-d features), 23.5M parameters for 10 classes; the network of Mukhoti et al. 2020 ("Calibrating
    Deep Neural Networks using Focal Loss", torrvision/focal_calibration Net/resnet.py) and of the APL
    code's CIFAR-100 configs (HanxunH/Active-Passive-Losses). Its layers equal torchvision's
    ``resnet50`` but for the stem (3x3, stride 1, no max-pool instead of 7x7 stride 2 + max-pool).
    """

    block = Bottleneck

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        blocks: Sequence[int] = (3, 4, 6, 3),
        widths: Sequence[int] = (64, 128, 256, 512),
    ) -> None:
        super().__init__(input_shape, num_classes, blocks, widths)


@register_model("preact_resnet18")
class PreActResNet18(ResNet):
    """Pre-activation ResNet-18 (He et al. 2016, "Identity Mappings in Deep Residual
    Networks"), CIFAR form: conv3x3 stem, PreActBlocks [2, 2, 2, 2], final BN-ReLU
    before the pool (as in the paper; some noisy-label code omits it)."""

    block = PreActBlock
    preact = True

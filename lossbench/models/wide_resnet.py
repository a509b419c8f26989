"""Wide residual networks (Zagoruyko and Komodakis 2016): wrn28_10 and any depth/width."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from lossbench.models.base import Classifier, register_model
from lossbench.models.cnn import image_shape
from lossbench.models.resnet import conv3x3


class WideBlock(nn.Module):
    """Pre-activation block BN-ReLU-conv3x3-(dropout)-BN-ReLU-conv3x3; 1x1 projection on a shape change."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), conv3x3(c_in, c_out, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), conv3x3(c_out, c_out)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shortcut: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pre = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(pre)
        out = self.dropout(self.conv1(pre))
        out = self.conv2(F.relu(self.bn2(out), inplace=True))
        return out + skip


@register_model("wrn28_10")
class WideResNet(Classifier):
    """WRN-depth-width (Zagoruyko and Komodakis 2016, "Wide Residual Networks"):
    conv3x3(16) stem, three stages of (depth - 4) / 6 wide blocks with 16w, 32w,
    64w channels (strides 1, 2, 2), final BN-ReLU, global average pool. The
    default WRN-28-10 has 36.5M parameters and 640-d features. Works on any
    [C, H, W] image (3x32x32 as published).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        depth: int = 28,
        width: int = 10,
        dropout: float = 0.0,
    ) -> None:
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"wide resnet depth must be 6n + 4 (10, 16, 22, 28, ...), got {depth}")
        if width < 1:
            raise ValueError(f"wide resnet width must be >= 1, got {width}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"wide resnet dropout must be in [0, 1), got {dropout}")
        c = image_shape("wrn28_10", input_shape)[0]
        n = (depth - 4) // 6
        layers: list[nn.Module] = [conv3x3(c, 16)]
        c = 16
        for stage, base in enumerate((16, 32, 64)):
            for i in range(n):
                layers.append(WideBlock(c, base * width, 2 if stage > 0 and i == 0 else 1, dropout))
                c = base * width
        layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        super().__init__(nn.Sequential(*layers), c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

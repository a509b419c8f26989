"""Wide residual networks (Zagoruyko and Komodakis 2016): wrn28_10 and any depth/width."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from lossbench.models.base import Classifier, register_model
from lossbench.models.cnn import image_shape
from lossbench.models.resnet import PreActBlock, conv3x3


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
                layers.append(PreActBlock(c, base * width, 2 if stage > 0 and i == 0 else 1, dropout))
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

"""LeNet-5 as the [Re] reproduction of Menon et al. 2020 builds it (dmizr/phuber ``phuber/network.py``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lossbench.models.base import Classifier, register_model
from lossbench.models.cnn import image_shape

# How the convolution and linear weights are drawn (biases keep PyTorch's default in every case).
LENET_INITS = {
    "code": "a standard normal truncated to [-0.2, 0.2] (what the [Re] code draws: "
            "scipy.stats.truncnorm.rvs(-0.2, 0.2), std 0.115)",
    "truncated_normal": "a normal of std 0.1 truncated at 2 std (the code comment's intent, "
                        "TensorFlow's truncated_normal(stddev=0.1); std 0.088)",
    "torch": "PyTorch's default (Kaiming uniform, a = sqrt(5))",
}


@register_model("lenet5")
class LeNet5(Classifier):
    """LeNet-5 (LeCun et al. 1998, "Gradient-Based Learning Applied to Document Recognition") in the
    form of Menon et al. 2020's MNIST experiments as reproduced by Mizrahi, Yuksel, Kyzy 2021
    ("[Re] Can gradient clipping mitigate label noise?", ReScience C):

    conv 5x5 (6, padding 2) - ReLU - avgpool 2 - conv 5x5 (16) - ReLU - avgpool 2 - flatten (16x5x5)
    - FC 120 - ReLU - FC 84 - ReLU - FC C. Features are the 84-d output of the second FC layer.

    ``init`` (``LENET_INITS``): ``code`` (default) draws every conv and linear weight from a standard
    normal truncated to [-0.2, 0.2], as the reproduction's ``truncated_normal(shape, threshold=0.2)``
    does (its comment says std 0.1 truncated at 2 std, which ``truncated_normal`` gives); biases keep
    PyTorch's default. Weights come from torch's global generator (the run's seed).
    """

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, init: str = "code",
    ) -> None:
        if init not in LENET_INITS:
            raise ValueError(f"unknown lenet5 init '{init}'; known: {', '.join(LENET_INITS)}")
        c, h, w = image_shape("lenet5", input_shape, min_size=12)
        h, w = (h // 2 - 4) // 2, (w // 2 - 4) // 2  # conv (padding 2) and pool, conv (none) and pool
        body = nn.Sequential(
            nn.Conv2d(c, 6, kernel_size=5, padding=2), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5), nn.ReLU(), nn.AvgPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * h * w, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
        )
        super().__init__(body, 84, num_classes)
        self.init = init
        if init == "torch":
            return
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                _truncated_normal_(m.weight, init)


@torch.no_grad()
def _truncated_normal_(weight: torch.Tensor, init: str) -> None:
    """Fill ``weight`` in place from the truncated normal ``init`` names (``LENET_INITS``)."""
    if init == "code":
        nn.init.trunc_normal_(weight, mean=0.0, std=1.0, a=-0.2, b=0.2)
    else:
        nn.init.trunc_normal_(weight, mean=0.0, std=0.1, a=-0.2, b=0.2)

"""Multi-layer perceptron over flattened inputs."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from lossbench.models.base import Classifier, register_model
from lossbench.models.dropout import Dropout


@register_model("mlp")
class MLP(Classifier):
    """Flatten -> [Linear -> (BatchNorm) -> ReLU -> Dropout] x len(hidden) -> Linear."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden: Sequence[int] = (256, 256),
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(nn.ReLU(inplace=True))
            if dropout > 0:
                layers.append(Dropout(dropout))
            width = h
        super().__init__(nn.Sequential(*layers), width, num_classes)

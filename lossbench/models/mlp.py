"""Fully connected models over flattened inputs: the MLP, the linear model, the LDR paper's MLP."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from lossbench.models.base import Classifier, register_model
from lossbench.models.dropout import Dropout

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


@register_model("mlp")
class MLP(Classifier):
    """Flatten -> [Linear -> (BatchNorm) -> activation -> Dropout] x len(hidden) -> Linear.

    ``activation``: relu (default), tanh or sigmoid (the AnyLoss code's tabular network, Han et al.
    2024: one hidden layer of 2, batch norm, sigmoid)."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden: Sequence[int] = (256, 256),
        dropout: float = 0.0,
        batch_norm: bool = False,
        activation: str = "relu",
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown mlp activation '{activation}'; known: {', '.join(ACTIVATIONS)}")
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(nn.ReLU(inplace=True) if activation == "relu" else ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(Dropout(dropout))
            width = h
        super().__init__(nn.Sequential(*layers), width, num_classes)


@register_model("linear")
class Linear(Classifier):
    """z = W x + b over the flattened input: multinomial logistic regression when trained with
    cross-entropy (the baseline of Lam et al. 2023, LegendreTron; its official
    ``MultinomialLogisticRegression`` is this layer with C - 1 outputs, see ``legendretron``).
    The "features" are the input itself; the head is the whole model."""

    def __init__(self, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__(nn.Flatten(), math.prod(input_shape), num_classes)


INITS = ("xavier_normal", "default")


@register_model("ldr_mlp")
class LDRMLP(Classifier):
    """The LDR-KL paper's feed-forward network for tabular data (Zhu, Ying, Yang 2023, "Label
    Distributionally Robust Losses for Multi-class Classification", ICML; Optimization-AI/ICML2023_LDR
    ``models.py`` FFNN): two hidden layers of width h = min(d, C), then the head,

        z = W3 act(W2 act(W1 x + b1) + b2) + b3,   act = tanh (the code's setting; relu offered),

    every weight matrix drawn by ``xavier_normal_`` (the code's ``_weights_init``; biases keep
    PyTorch's default), or PyTorch's default (``init: default``). ``width`` overrides h.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, width: int | None = None,
                 activation: str = "tanh", init: str = "xavier_normal") -> None:
        if activation not in ("tanh", "relu"):
            raise ValueError(f"ldr_mlp activation must be tanh or relu, got {activation!r}")
        if init not in INITS:
            raise ValueError(f"unknown ldr_mlp init '{init}'; known: {', '.join(INITS)}")
        d = math.prod(input_shape)
        h = min(d, num_classes) if width is None else int(width)
        if h < 1:
            raise ValueError(f"ldr_mlp width must be at least 1, got {h}")
        act = nn.Tanh if activation == "tanh" else nn.ReLU
        body = nn.Sequential(nn.Flatten(), nn.Linear(d, h), act(), nn.Linear(h, h), act())
        super().__init__(body, h, num_classes)
        if init == "xavier_normal":
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.xavier_normal_(module.weight)

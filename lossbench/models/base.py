"""The model contract: built from (input shape, classes); logits, optionally with features."""

from __future__ import annotations

from torch import Tensor, nn

from lossbench.core.registry import Registry

MODELS: Registry = Registry("model")
register_model = MODELS.register


class Classifier(nn.Module):
    """A feature extractor followed by a linear head.

    ``forward(x)`` returns logits [B, C]; ``forward(x, return_features=True)``
    returns (logits, penultimate features [B, D]) for losses that need them. A float input of
    another precision than the model's (float32 features into a float64 model: ``trainer.dtype``)
    is cast to the model's first.
    """

    def __init__(self, body: nn.Module, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim

    def forward(self, x: Tensor, return_features: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        dtype = self.head.weight.dtype
        if x.is_floating_point() and x.dtype != dtype:
            x = x.to(dtype)
        features = self.body(x)
        logits = self.head(features)
        return (logits, features) if return_features else logits

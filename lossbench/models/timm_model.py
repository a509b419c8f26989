"""Any timm architecture by name, untrained, with our linear head on its pooled features."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from lossbench.core.extras import require
from lossbench.models.base import Classifier, register_model


class TimmBody(nn.Module):
    """timm's ``forward_features`` then ``forward_head(pre_logits=True)``: the pooled features."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


@register_model("timm")
class TimmModel(Classifier):
    """A timm model (Wightman, "PyTorch Image Models", github.com/huggingface/pytorch-image-models)
    built with ``pretrained=False`` (no weights are downloaded, ever), ``in_chans``
    from the dataset and no classifier of its own; lossbench's linear head maps its
    pre-logit features to the classes. ``kwargs`` go to ``timm.create_model``
    (e.g. ``img_size: 32`` for a ViT on CIFAR). Input shapes are the architecture's:
    ImageNet-style stems downsample 32x32 images heavily.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        name: str = "resnet18",
        drop_rate: float = 0.0,
        kwargs: Mapping | None = None,
    ) -> None:
        require("timm", "model=timm")
        import timm

        if len(input_shape) != 3:
            raise ValueError(f"model 'timm' needs image input [C, H, W], got {list(input_shape)}; "
                             f"use model=mlp for feature datasets")
        if not timm.is_model(name):
            raise ValueError(f"unknown timm architecture '{name}'; see timm.list_models() for the names")
        model = timm.create_model(
            name, pretrained=False, num_classes=0, in_chans=int(input_shape[0]),
            drop_rate=drop_rate, **dict(kwargs or {}),
        )
        body = TimmBody(model)
        was_training = body.training
        body.eval()
        try:
            with torch.no_grad():
                feature_dim = body(torch.zeros(1, *input_shape)).shape[-1]
        except (RuntimeError, AssertionError, ValueError) as exc:
            raise ValueError(
                f"timm model '{name}' does not take input {list(input_shape)}: {exc} "
                f"(architectures with a fixed input size take e.g. model.kwargs.img_size=32)"
            ) from exc
        body.train(was_training)
        super().__init__(body, int(feature_dim), num_classes)
        self.timm_name = name

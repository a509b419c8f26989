"""Models. Importing this package registers every model."""

from lossbench.models import cnn, lenet, mlp, resnet, timm_model, wide_resnet  # noqa: F401  (registration)
from lossbench.models.base import MODELS, Classifier, register_model

__all__ = ["MODELS", "Classifier", "register_model"]

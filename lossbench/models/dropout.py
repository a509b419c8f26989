"""Dropout whose masks come from the run's own random stream, so that a run's numbers do not depend on
what else shares the process (the other members of a pack, the global random state).

Dropout (Srivastava et al. 2014, "Dropout: a simple way to prevent neural networks from overfitting",
JMLR 15): in training, ``y = x * m / (1 - p)`` with ``m_i ~ Bernoulli(1 - p)``; in evaluation
``y = x``. The masks are drawn from the generator ``dropout_stream`` sets (``Trainer.fit`` sets the
run's own, seeded from its seed and checkpointed with it); outside one, from torch's global
generator. A packed model draws member k's masks from member k's stream, with the shapes its lone
run draws (``lossbench.models.packing``), so both draw the same masks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

_STREAM: list[torch.Generator | None] = [None]


@contextlib.contextmanager
def dropout_stream(generator: torch.Generator | None) -> Iterator[None]:
    """Draw the masks of every ``Dropout`` run inside from ``generator``."""
    _STREAM.append(generator)
    try:
        yield
    finally:
        _STREAM.pop()


def current_stream() -> torch.Generator | None:
    return _STREAM[-1]


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, like: Tensor,
              generator: torch.Generator | None) -> Tensor:
    """``m / (1 - p)`` with ``m_i ~ Bernoulli(1 - p)`` of ``shape``, in ``like``'s dtype and device."""
    mask = torch.empty(shape, dtype=like.dtype, device=like.device)
    return mask.bernoulli_(1.0 - p, generator=generator).div_(1.0 - p)


class Dropout(nn.Dropout):
    """``nn.Dropout`` drawing its masks from the current ``dropout_stream``."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        if self.p == 1:
            return x * 0
        return x * keep_mask(x.shape, self.p, x, current_stream())


def random_layers(model: nn.Module) -> list[str]:
    """Names of the layers of ``model`` that draw random numbers in training (any dropout with p > 0,
    and timm's ``drop_rate`` / ``drop_path_rate`` / ``drop_prob`` settings above 0)."""
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.dropout._DropoutNd) and module.p > 0:
            found.append(name or type(module).__name__)
            continue
        for attr in ("drop_rate", "drop_path_rate", "drop_prob"):
            value = getattr(module, attr, None)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                found.append(f"{name or type(module).__name__}.{attr}")
                break
    return found

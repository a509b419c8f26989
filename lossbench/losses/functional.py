"""Numerically stable pieces the losses share: log p_y, log(1 - p_y), log(1 - p_k)."""

from __future__ import annotations

import torch
from torch import Tensor


def gather(values: Tensor, target: Tensor) -> Tensor:
    """values[i, target[i]] for every row i."""
    return values.gather(1, target[:, None]).squeeze(1)


def target_mask(logits: Tensor, target: Tensor) -> Tensor:
    """Boolean [B, C] mask that is True at (i, target[i])."""
    return torch.zeros_like(logits, dtype=torch.bool).scatter_(1, target[:, None], True)


def log1m_p_true(logits: Tensor, target: Tensor) -> Tensor:
    """log(1 - p_y), computed as logsumexp_{k != y} z_k - logsumexp_k z_k.

    Finite (with a finite gradient) even where p_y rounds to 1, unlike
    log1p(-p_y); needs at least two classes.
    """
    others = logits.masked_fill(target_mask(logits, target), float("-inf"))
    return others.logsumexp(dim=1) - logits.logsumexp(dim=1)


def log1m_softmax(logits: Tensor) -> Tensor:
    """log(1 - p_k) for every class, [B, C], finite for any finite logits.

    Only the top class of a row can have p_k > 1/2; there the value is
    logsumexp_{j != k} z_j - logsumexp_j z_j. Elsewhere log1p(-p_k) is accurate
    (its slope is at most 2), with the top entry masked out before log1p so
    that no unused branch produces an infinite gradient.
    """
    top = logits.argmax(dim=1)
    is_top = target_mask(logits, top)
    p = logits.softmax(dim=1)
    rest = torch.log1p(-p.masked_fill(is_top, 0.0))
    top_value = log1m_p_true(logits, top)[:, None]
    return torch.where(is_top, top_value, rest)


def pow_p(logp: Tensor, q: float) -> Tensor:
    """p^q from log p, as exp(q log p): a finite gradient where p underflows to 0."""
    return torch.exp(q * logp)

"""K models of one architecture as one computation: stacked parameters and buffers under vmap."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import partial

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap


class NotPackable(RuntimeError):
    """The models cannot be trained as one packed computation (the caller trains them one by one)."""


def _layout(model: nn.Module) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    return [(name, tuple(t.shape), t.dtype) for name, t in model.state_dict(keep_vars=True).items()]


class PackedModel:
    """K models of one architecture trained as one: ``forward`` maps inputs [K, B, ...] to
    logits [K, B, C], member k computing with its own weights on its own rows.

    Every parameter and buffer is stacked along a new leading dimension (as
    ``torch.func.stack_module_state`` does) and the architecture is evaluated
    with ``torch.func.functional_call`` under ``vmap``: member k's math is its
    model's, batched. The member models are then re-pointed at their slices
    (``param.data = stacked[k]``, buffers alike), so each member model, its
    optimizer and its checkpoints keep working on the member's current weights
    with no copying back.

    Batch norm keeps per-member running statistics: the buffers are passed to
    ``functional_call`` batched, so the in-place running-mean/variance update of
    each member lands in its own slice (the vmap limitation arises only for
    unbatched buffers, and the usual way round it, ``track_running_stats=False``
    or GroupNorm, changes the model; neither is done here). Random layers
    (dropout) draw independently per member (``randomness="different"``), so
    their masks differ from those of the same models trained alone.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        models = list(models)
        if not models:
            raise ValueError("a pack needs at least one model")
        first = _layout(models[0])
        for k, model in enumerate(models[1:], start=1):
            if type(model) is not type(models[0]) or _layout(model) != first:
                raise NotPackable(f"model {k} ({type(model).__name__}) has another architecture than model 0 "
                                  f"({type(models[0]).__name__})")
        self.members = models
        self.skeleton = copy.deepcopy(models[0]).to("meta")
        self.params: dict[str, Tensor] = {}
        self.buffers: dict[str, Tensor] = {}
        named = [dict(m.named_parameters()) for m in models]
        for name, p in named[0].items():
            stacked = torch.stack([n[name].detach() for n in named])
            self.params[name] = stacked.requires_grad_(p.requires_grad)
        for name, _ in models[0].named_buffers():
            self.buffers[name] = torch.stack([m.get_buffer(name).detach() for m in models])
        for k, model in enumerate(models):
            for name, p in model.named_parameters():
                p.data = self.params[name].detach()[k]
            for name, b in model.named_buffers():
                b.data = self.buffers[name][k]
        self.size = len(models)

    def train(self, mode: bool = True) -> PackedModel:
        self.skeleton.train(mode)
        return self

    @property
    def training(self) -> bool:
        return self.skeleton.training

    def _member(self, params: dict, buffers: dict, x: Tensor, return_features: bool):
        kwargs = {"return_features": True} if return_features else {}
        return functional_call(self.skeleton, (params, buffers), (x,), kwargs)

    def __call__(self, x: Tensor, return_features: bool = False):
        """Logits [K, B, C] (and features [K, B, D]) for per-member inputs ``x`` [K, B, ...]."""
        fn = vmap(partial(self._member, return_features=return_features), randomness="different")
        return fn(self.params, self.buffers, x)

    def shared(self, x: Tensor, return_features: bool = False):
        """Logits [K, B, C] of every member on the same inputs ``x`` [B, ...]."""
        fn = vmap(partial(self._member, return_features=return_features), in_dims=(0, 0, None),
                  randomness="different")
        return fn(self.params, self.buffers, x)

    def parameters(self) -> list[Tensor]:
        """The stacked parameters [K, ...] (the leaves gradients reach)."""
        return list(self.params.values())

    def member_parameters(self, k: int) -> list[Tensor]:
        """Member k's own parameters, in the order of ``parameters()``."""
        named = dict(self.members[k].named_parameters())
        return [named[name] for name in self.params]

    def probe(self, x: Tensor, return_features: bool = False) -> None:
        """Raise NotPackable if a forward and backward pass of the pack fails on ``x`` [K, B, ...].

        The pass runs on copies of the weights and buffers (nothing is updated) and
        leaves the global random state as it was.
        """
        cpu_state = torch.get_rng_state()
        cuda_state = torch.cuda.get_rng_state(x.device) if x.device.type == "cuda" else None
        params = {k: v.detach().clone().requires_grad_(v.requires_grad) for k, v in self.params.items()}
        buffers = {k: v.clone() for k, v in self.buffers.items()}
        try:
            fn = vmap(partial(self._member, return_features=return_features), randomness="different")
            out = fn(params, buffers, x)
            logits = out[0] if isinstance(out, tuple) else out
            logits.float().sum().backward()
        except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
            text = str(exc).strip().splitlines()
            raise NotPackable(f"{type(self.members[0]).__name__} cannot run under vmap: "
                              f"{text[0] if text else type(exc).__name__}") from exc
        finally:
            torch.set_rng_state(cpu_state)
            if cuda_state is not None:
                torch.cuda.set_rng_state(cuda_state, x.device)

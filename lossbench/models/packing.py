"""K models of one architecture as one computation: stacked parameters and buffers, run as grouped
layers (for the layers listed in ``GROUPED``) or under vmap (any architecture)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap

from lossbench.models.base import Classifier
from lossbench.models.dropout import Dropout, keep_mask, random_layers


class NotPackable(RuntimeError):
    """The models cannot be trained as one packed computation (the caller trains them one by one)."""


def _layout(model: nn.Module) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    return [(name, tuple(t.shape), t.dtype) for name, t in model.state_dict(keep_vars=True).items()]


class PackedModel:
    """K models of one architecture trained as one: ``forward`` maps inputs [K, B, ...] to
    logits [K, B, C], member k computing with its own weights on its own rows.

    Every parameter and buffer is stacked along a new leading dimension (as
    ``torch.func.stack_module_state`` does). A model built only of the layers in
    ``GROUPED`` (lossbench's mlp, cnn4, cnn8, lenet5) runs them as grouped layers: linear
    layers as one batched matrix product (``baddbmm``), convolutions as one
    convolution with K groups over the members' channels side by side, batch
    norm over the K x C channels. Any other architecture is evaluated with
    ``torch.func.functional_call`` under ``vmap``. Either way member k's math is
    its model's. The member models are then re-pointed at their slices
    (``param.data = stacked[k]``, buffers alike), so each member model, its
    optimizer and its checkpoints keep working on the member's current weights
    with no copying back.

    Batch norm keeps per-member running statistics: the buffers are passed to
    ``functional_call`` batched, so the in-place running-mean/variance update of
    each member lands in its own slice (the vmap limitation arises only for
    unbatched buffers, and the usual way round it, ``track_running_stats=False``
    or GroupNorm, changes the model; neither is done here). Dropout
    (``lossbench.models.dropout.Dropout``) draws member k's masks from
    ``generators[k]``, member k's own stream, with the shapes its lone run draws,
    so a member's masks do not depend on its pack; under vmap they would, so a
    model with random layers that does not run grouped is NotPackable.
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
        # conv weights in channels_last (trainer.channels_last): the pack's convolutions run NHWC too
        self.channels_last = any(
            m.weight.dim() == 4 and m.weight.is_contiguous(memory_format=torch.channels_last)
            and not m.weight.is_contiguous() for m in models[0].modules() if isinstance(m, nn.Conv2d))
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
        self.generators: list[torch.Generator] | None = None  # each member's dropout stream
        self.random = random_layers(models[0])
        self.grouped = _groupable(self.skeleton)
        if not self.grouped:
            self._refuse_random()
        # each module's own parameters by local name, looked up once (module path + "." -> names)
        self.local = {f"{path}.": [n for n, _ in m.named_parameters(recurse=False)]
                      for path, m in self.skeleton.named_modules() if path}

    def _refuse_random(self) -> None:
        if self.random:
            raise NotPackable(f"{type(self.members[0]).__name__} has dropout ({', '.join(self.random[:3])}) "
                              "outside the layers a pack runs grouped; under vmap its masks would depend on "
                              "the pack, so its jobs train one by one")

    def train(self, mode: bool = True) -> PackedModel:
        self.skeleton.train(mode)
        return self

    @property
    def training(self) -> bool:
        return self.skeleton.training

    def _member(self, params: dict, buffers: dict, x: Tensor, return_features: bool):
        kwargs = {"return_features": True} if return_features else {}
        return functional_call(self.skeleton, (params, buffers), (x,), kwargs)

    def _run(self, params: dict, buffers: dict, x: Tensor, return_features: bool, shared: bool = False):
        if self.grouped:
            if shared:
                x = x.unsqueeze(0).expand(self.size, *x.shape)
            return _Grouped(params, buffers, self.size, self.skeleton.training, self.local,
                            self.generators, self.channels_last).classifier(self.skeleton, x, return_features)
        fn = vmap(partial(self._member, return_features=return_features),
                  in_dims=(0, 0, None) if shared else 0, randomness="different")
        return fn(params, buffers, x)

    def __call__(self, x: Tensor, return_features: bool = False):
        """Logits [K, B, C] (and features [K, B, D]) for per-member inputs ``x`` [K, B, ...]."""
        return self._run(self.params, self.buffers, x, return_features)

    def shared(self, x: Tensor, return_features: bool = False):
        """Logits [K, B, C] of every member on the same inputs ``x`` [B, ...]."""
        return self._run(self.params, self.buffers, x, return_features, shared=True)

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
        leaves the global random state as it was. If the grouped layers fail on these
        inputs, the pack falls back to vmap (and probes that).
        """
        cpu_state = torch.get_rng_state()
        cuda_state = torch.cuda.get_rng_state(x.device) if x.device.type == "cuda" else None
        params = {k: v.detach().clone().requires_grad_(v.requires_grad) for k, v in self.params.items()}
        buffers = {k: v.clone() for k, v in self.buffers.items()}
        generators, self.generators = self.generators, None  # the members' streams are not drawn from
        try:
            while True:
                try:
                    out = self._run(params, buffers, x, return_features)
                    logits = out[0] if isinstance(out, tuple) else out
                    logits.float().sum().backward()
                    return
                except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
                    if not self.grouped:
                        text = str(exc).strip().splitlines()
                        raise NotPackable(f"{type(self.members[0]).__name__} cannot run under vmap: "
                                          f"{text[0] if text else type(exc).__name__}") from exc
                    self.grouped = False
                    self._refuse_random()
        finally:
            self.generators = generators
            torch.set_rng_state(cpu_state)
            if cuda_state is not None:
                torch.cuda.set_rng_state(cuda_state, x.device)


# Layers the grouped path runs (exact types: a subclass may compute something else).
GROUPED = (nn.Sequential, nn.Linear, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d,
           nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, Dropout, nn.Identity)


def _groupable(model: nn.Module) -> bool:
    """Whether ``model`` is a Classifier (with its own forward) built only of ``GROUPED`` layers."""
    if not isinstance(model, Classifier) or type(model).forward is not Classifier.forward:
        return False
    for name, m in model.named_modules():
        if not name:
            continue
        if type(m) not in GROUPED:
            return False
        if isinstance(m, nn.Conv2d) and m.padding_mode != "zeros":
            return False
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.track_running_stats and m.momentum is None:
            return False
        if isinstance(m, nn.Flatten) and (m.start_dim, m.end_dim) != (1, -1):
            return False
    return True


class _Grouped:
    """One forward pass of K stacked models through grouped layers.

    Activations are [K, B, ...] ("members first"), [K, F, B] ("features first",
    what linear layers produce: W_k @ x_k^T + b_k, so that each weight's
    gradient comes out in the weight's own layout and needs no copy; measured
    1.2-1.3x faster for the digits MLP's forward and backward at K = 8), or
    [B, K*C, H, W] ("channels side by side") for convolutional ones, in channels_last
    memory (NHWC) when the members' convolutions are (``trainer.channels_last``: 1.15x for
    a LeNet-5 pack of 8 on CPU); a layer converts what it gets (the conversions to and from
    "features" are views).
    Member k's rows and channels see only its weights.
    """

    def __init__(self, params: dict, buffers: dict, size: int, training: bool, local: dict,
                 generators: list[torch.Generator] | None = None, channels_last: bool = False) -> None:
        self.params, self.buffers, self.k, self.training, self.local = params, buffers, size, training, local
        self.generators = generators or [None] * size
        self.channels_last = channels_last

    def classifier(self, model: Classifier, x: Tensor, return_features: bool):
        features = self.members_first(self.run(model.body, "body.", ("members", x)))
        logits = self.members_first(self.run(model.head, "head.", ("members", features)))
        return (logits, features) if return_features else logits

    def members_first(self, value) -> Tensor:
        layout, x = value
        if layout == "members":
            return x
        if layout == "features":
            return x.transpose(1, 2)
        b, kc = x.shape[:2]
        return x.view(b, self.k, kc // self.k, *x.shape[2:]).transpose(0, 1)

    def channels(self, value) -> Tensor:
        layout, x = value
        if layout == "channels":
            return x
        x = self.members_first(value)
        k, b = x.shape[:2]
        if self.channels_last and x.ndim == 5:  # [K, B, C, H, W] -> [B, H, W, K*C], seen as NCHW
            h, w = x.shape[3:]
            nhwc = x.permute(1, 3, 4, 0, 2).reshape(b, h, w, k * x.shape[2]).permute(0, 3, 1, 2)
            return nhwc.contiguous(memory_format=torch.channels_last)
        return x.transpose(0, 1).reshape(b, k * x.shape[2], *x.shape[3:])

    def run(self, m: nn.Module, prefix: str, value):
        if isinstance(m, nn.Sequential):
            for name, child in m.named_children():
                value = self.run(child, f"{prefix}{name}.", value)
            return value
        p = {name: self.params[prefix + name] for name in self.local[prefix]}
        if isinstance(m, nn.Linear):
            x = self.members_first(value)
            if x.ndim != 3:
                raise ValueError(f"grouped linear layers take [K, B, features], got {tuple(x.shape)}")
            x = x.transpose(1, 2)  # [K, in, B]
            w = p["weight"]        # [K, out, in]
            out = torch.bmm(w, x) if "bias" not in p else torch.baddbmm(p["bias"].unsqueeze(2), w, x)
            return ("features", out)
        if isinstance(m, nn.Conv2d):
            x = self.channels(value)
            weight = p["weight"].flatten(0, 1)
            if self.channels_last:  # as a lone model's weights under trainer.channels_last
                weight = weight.contiguous(memory_format=torch.channels_last)
            bias = p["bias"].flatten() if "bias" in p else None
            return ("channels", F.conv2d(x, weight, bias, m.stride, m.padding, m.dilation, m.groups * self.k))
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return self.batch_norm(m, prefix, p, value)
        if isinstance(m, nn.Flatten):
            layout, x = value
            if layout == "channels":
                b = x.shape[0]
                return ("members", x.reshape(b, self.k, -1).transpose(0, 1))
            return ("members", self.members_first(value).flatten(2))
        layout, x = value
        if isinstance(m, nn.ReLU):
            return (layout, F.relu(x, inplace=m.inplace))
        if isinstance(m, nn.MaxPool2d):
            return ("channels", F.max_pool2d(self.channels(value), m.kernel_size, m.stride, m.padding,
                                             m.dilation, m.ceil_mode))
        if isinstance(m, nn.AvgPool2d):
            return ("channels", F.avg_pool2d(self.channels(value), m.kernel_size, m.stride, m.padding,
                                             m.ceil_mode, m.count_include_pad, m.divisor_override))
        if isinstance(m, nn.AdaptiveAvgPool2d):
            return ("channels", F.adaptive_avg_pool2d(self.channels(value), m.output_size))
        if isinstance(m, Dropout):
            return (layout, self.dropout(m, layout, x))
        return value  # nn.Identity

    def dropout(self, m: Dropout, layout: str, x: Tensor) -> Tensor:
        """Member k's masks from member k's stream, of the shape its lone run draws (``Dropout``)."""
        if not self.training or m.p == 0:
            return x
        if layout == "features":  # [K, F, B]: a lone run draws [B, F]
            return self.dropout(m, "members", x.transpose(1, 2)).transpose(1, 2)
        if layout == "members":  # [K, B, ...]: member k's rows
            return x * torch.stack([keep_mask(x.shape[1:], m.p, x, g) for g in self.generators])
        b, kc = x.shape[:2]  # [B, K*C, ...]: member k's channels
        shape = (b, kc // self.k, *x.shape[2:])
        return x * torch.cat([keep_mask(shape, m.p, x, g) for g in self.generators], dim=1)

    def batch_norm(self, m, prefix: str, p: dict, value):
        """Batch norm of every member's channels at once: its statistics, its running buffers."""
        layout, x = value
        if isinstance(m, nn.BatchNorm1d):
            x = self.members_first(value)
            if x.ndim != 3:
                raise ValueError(f"grouped batch norm takes [K, B, features], got {tuple(x.shape)}")
            k, b, d = x.shape
            flat = x.transpose(0, 1).reshape(b, k * d)
        else:
            flat = self.channels(value)
        track = m.track_running_stats
        mean = self.buffers[prefix + "running_mean"].view(-1) if track else None
        var = self.buffers[prefix + "running_var"].view(-1) if track else None
        use_batch = self.training or not track
        if self.training and track:
            self.buffers[prefix + "num_batches_tracked"].add_(1)
        weight = p["weight"].flatten() if "weight" in p else None
        bias = p["bias"].flatten() if "bias" in p else None
        out = F.batch_norm(flat, mean, var, weight, bias, use_batch, m.momentum or 0.0, m.eps)
        if isinstance(m, nn.BatchNorm1d):
            return ("members", out.view(b, k, d).transpose(0, 1))
        return ("channels", out)

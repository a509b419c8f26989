"""Losses with trainable parameters of their own, learned jointly with the model."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lossbench.losses.base import Loss, register_loss

# Parameters are drawn from a generator of this seed, so that two fresh losses agree (the model's
# initialisation still follows the run's seed).
INIT_SEED = 0
_SCALE_MIN = 1e-3  # ActNorm's floor on its scale (the official ICNN's _scaling_min)
ACTNORM_INITS = ("identity", "data")


def _uniform(generator: torch.Generator, fan_in: int, *shape: int) -> nn.Parameter:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), torch.nn.Linear's default initialisation."""
    bound = 1.0 / math.sqrt(fan_in)
    return nn.Parameter((torch.rand(*shape, generator=generator) * 2 - 1) * bound)


class ActNorm(nn.Module):
    """(x + b) * (exp(s) + 1e-3) per feature. ``data_init``: b and s are set from the first batch
    it sees (mean 0 and standard deviation 1 there; Kingma and Dhariwal 2018's data-dependent
    init, the official ICNN's); otherwise b = s = 0, a scale of 1.001."""

    def __init__(self, features: int, train_shift: bool = True, data_init: bool = True) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.zeros(features), requires_grad=train_shift)
        self.s = nn.Parameter(torch.zeros(features))
        self.register_buffer("initialized", torch.tensor(not data_init))

    def forward(self, x: Tensor) -> Tensor:
        if not bool(self.initialized):
            with torch.no_grad():
                mean = x.detach().mean(0)
                std = (x.detach() - mean).pow(2).mean(0).sqrt()
                self.b.copy_(-mean)
                self.s.copy_(torch.log(1.0 / (std + 1e-6)))
                self.initialized.fill_(True)
        return (x + self.b.to(x.dtype)) * (self.s.to(x.dtype).exp() + _SCALE_MIN)


class ConvexPotential(nn.Module):
    """F(x) = softplus(w1) g(x) + softplus(w0) ||x||^2 / 2, with g an input-convex network (ICNN).

    g: z_1 = softplus(A_0 x + a_0) [hidden]; for each further layer l,
    z_{l+1} = [softplus(N_l(P_l z_l + B_l x + b_l)), softplus(C_l x + c_l)] (hidden/2 each);
    g = N_last(P_last z + B_last x). P are "positive" linear maps, softplus(W) z / fan_in
    (their bias scaled the same way), N are ActNorms (positive scales), so g is convex in x
    and F strictly convex: its gradient is invertible (Huang et al. 2021's convex potential flows).
    """

    def __init__(self, dim: int, hidden: int, depth: int, generator: torch.Generator,
                 data_init: bool) -> None:
        super().__init__()
        half = hidden // 2
        self.A0, self.a0 = _uniform(generator, dim, hidden, dim), _uniform(generator, dim, hidden)
        widths = [hidden] + [half] * (depth - 1)
        self.P = nn.ParameterList(_uniform(generator, hidden, half, hidden) for _ in range(depth - 1))
        self.p = nn.ParameterList(_uniform(generator, hidden, half) for _ in range(depth - 1))
        self.B = nn.ParameterList(_uniform(generator, dim, half, dim) for _ in range(depth - 1))
        self.b = nn.ParameterList(_uniform(generator, dim, half) for _ in range(depth - 1))
        self.C = nn.ParameterList(_uniform(generator, dim, half, dim) for _ in range(depth - 1))
        self.c = nn.ParameterList(_uniform(generator, dim, half) for _ in range(depth - 1))
        self.norms = nn.ModuleList(ActNorm(half, data_init=data_init) for _ in range(depth - 1))
        self.P_last = _uniform(generator, hidden, 1, hidden)
        self.B_last = _uniform(generator, dim, 1, dim)
        self.norm_last = ActNorm(1, train_shift=False, data_init=data_init)  # a shift of F moves no gradient
        self.w1 = nn.Parameter(torch.randn(1, generator=generator))
        self.w0 = nn.Parameter(torch.randn(1, generator=generator))
        self.widths = widths

    @staticmethod
    def _positive(z: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        out = F.linear(z, F.softplus(weight.to(z.dtype)), None if bias is None else bias.to(z.dtype))
        return out / z.shape[1]

    def g(self, x: Tensor) -> Tensor:
        d = x.dtype
        z = F.softplus(F.linear(x, self.A0.to(d), self.a0.to(d)))
        for P, p, B, b, C, c, norm in zip(self.P, self.p, self.B, self.b, self.C, self.c, self.norms,
                                          strict=True):
            mixed = F.softplus(norm(self._positive(z, P, p) + F.linear(x, B.to(d), b.to(d))))
            z = torch.cat([mixed, F.softplus(F.linear(x, C.to(d), c.to(d)))], dim=1)
        return self.norm_last(self._positive(z, self.P_last, None) + F.linear(x, self.B_last.to(d)))[:, 0]

    def forward(self, x: Tensor) -> Tensor:
        """F(x) [N]."""
        d = x.dtype
        return F.softplus(self.w1.to(d)) * self.g(x) + F.softplus(self.w0.to(d)) * x.pow(2).sum(1) / 2

    def gradient(self, x: Tensor) -> Tensor:
        """grad_x F(x) [N, dim], differentiable (in x and in the parameters) when grad mode is on."""
        create = torch.is_grad_enabled()
        with torch.enable_grad():
            x_in = x if x.requires_grad else x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self(x_in).sum(), x_in, create_graph=create)
        return grad


@register_loss("legendretron")
class LegendreTron(Loss):
    """LegendreTron: a proper canonical loss whose inverse link is learned with the model.

    With u in R^(C-1) the model's output, the prediction is
    p = softmax([grad F(u), 0]) with F strictly convex (``ConvexPotential``, an
    input-convex network; ``blocks`` > 1 composes gradients of several such
    potentials), and the loss is -log p_y: the log loss of that prediction,
    i.e. the proper composite loss whose inverse canonical link is
    u -> softmax([grad F(u), 0]) (the gradient of the convex conjugate of its
    Bayes risk, by Legendre duality). With F = ||u||^2 / 2 it is cross-entropy.
    The potential's parameters are trained with the model (``trainable``), in
    their own optimizer group (``lr``, ``weight_decay``; null: the optimizer's),
    and saved in the loss's state_dict; evaluation scores p.

    Where lossbench differs from the official code (khflam/legendretron): the
    model has C outputs z and u = z_(1..C-1) - z_C (the same function class as
    the official C-1 outputs with a last logit fixed at 0: softmax is invariant
    to a common shift); the potential's parameters are drawn from a fixed seed;
    computations are in float32 (the code sets float64); the optimizer is the
    run's (the code trains both with Adam, lr 1e-3, StepLR 0.7 every 4 epochs,
    L2 1e-3 on every parameter). Defaults are the code's LegendreLink: one
    block, hidden width 4, depth 4. ``actnorm_init``: ``identity`` (default)
    starts the ICNN's ActNorm layers at scale 1; ``data`` is the official
    data-dependent init from the first batch, which, with a freshly initialised
    network's nearly constant outputs, gives the potential a huge curvature: on
    digits (10 epochs, 3 seeds) with SGD lr 0.1 it stalled at chance (9.5% test
    accuracy; the link's w0 ran to -12,000) against 96.8% for ``identity``, and
    with Adam lr 1e-3 it reached 68.2% against 95.7% (benchmarks/loss_shapes.md).

    Kevin H. Lam, Christian Walder, Spiridon Penev, Richard Nock 2023,
    "LegendreTron: Uprising Proper Multiclass Loss Learning", ICML.
    """

    family = "learned"
    paper = "Lam et al. 2023"
    probabilistic = False
    trainable = True

    def __init__(self, blocks: int = 1, hidden: int = 4, depth: int = 4, actnorm_init: str = "identity",
                 lr: float | None = None, weight_decay: float | None = None,
                 num_classes: int | None = None) -> None:
        super().__init__()
        for key, value, least in (("blocks", blocks, 1), ("hidden", hidden, 2), ("depth", depth, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"legendretron needs an integer {key} >= {least}, got {value!r}")
        if hidden % 2:
            raise ValueError(f"legendretron needs an even hidden width (it splits in halves), got {hidden}")
        if actnorm_init not in ACTNORM_INITS:
            raise ValueError(f"unknown legendretron actnorm_init '{actnorm_init}'; "
                             f"known: {', '.join(ACTNORM_INITS)}")
        if lr is not None and not lr > 0:
            raise ValueError(f"legendretron needs lr > 0 (or null for the optimizer's), got {lr}")
        if weight_decay is not None and not weight_decay >= 0:
            raise ValueError(f"legendretron needs weight_decay >= 0 (or null), got {weight_decay}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"legendretron learns a link on C - 1 dimensions and needs num_classes >= 2 "
                             f"(filled in by lossbench.lifecycle.builders.build_loss), got {num_classes!r}")
        generator = torch.Generator().manual_seed(INIT_SEED)
        self.potentials = nn.ModuleList(
            ConvexPotential(num_classes - 1, hidden, depth, generator, data_init=actnorm_init == "data")
            for _ in range(blocks))
        self.blocks, self.hidden, self.depth, self.num_classes = blocks, hidden, depth, num_classes
        self.actnorm_init = actnorm_init
        self.lr = None if lr is None else float(lr)
        self.weight_decay = None if weight_decay is None else float(weight_decay)

    def prediction_logits(self, logits: Tensor) -> Tensor:
        """[grad F(u), 0] with u = z_(1..C-1) - z_C: softmax of it is LegendreTron's prediction."""
        if logits.shape[1] != self.num_classes:
            raise ValueError(f"legendretron was built for {self.num_classes} classes, got logits of "
                             f"{logits.shape[1]}")
        with torch.autocast(device_type=logits.device.type, enabled=False):
            dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
            v = logits.to(dtype)
            v = v[:, :-1] - v[:, -1:]
            for potential in self.potentials:
                v = potential.gradient(v)
            return torch.cat([v, torch.zeros_like(v[:, :1])], dim=1)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(self.prediction_logits(logits), target, reduction="none")

"""Losses of p_y alone computed from the features and the head, without materialising the logits."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from lossbench.losses.base import LOSSES, Loss, register_loss
from lossbench.losses.comp_sum import comp_sum_phi
from lossbench.losses.functional import gather

CCE_BACKENDS = ("chunked", "cce", "torch_compile")


def _one_minus_p(logp: Tensor) -> Tensor:
    return -torch.expm1(logp)


def _comp_sum(loss: Any, logp: Tensor) -> Tensor:
    return comp_sum_phi(logp, loss.tau, loss.guard)


def _focal(loss: Any, logp: Tensor) -> Tensor:
    weight = _one_minus_p(logp).clamp_min(torch.finfo(logp.dtype).tiny).pow(loss.gamma)
    return -(weight.detach() if loss.detach_weight else weight) * logp


# Each inner loss as a function of log p_y alone, from the instance's own hyperparameters; the tests
# check every entry against the loss's compute() on the full logits.
P_Y_FORMS: dict[str, Callable[[Any, Tensor], Tensor]] = {
    "ce": lambda loss, logp: -logp,
    "comp_sum": _comp_sum,
    "sum_exp": _comp_sum,
    "comp_gce": _comp_sum,
    "comp_mae": _comp_sum,
    "gce": lambda loss, logp: -torch.expm1(loss.q * logp) / loss.q,
    "mae": lambda loss, logp: loss.scale * _one_minus_p(logp),
    "focal": _focal,
    "poly1": lambda loss, logp: -logp + loss.epsilon * _one_minus_p(logp),
    "rce": lambda loss, logp: -loss.A * _one_minus_p(logp),
    "sce": lambda loss, logp: -loss.alpha * logp - loss.beta * loss.A * _one_minus_p(logp),
    "taylor_ce": lambda loss, logp: sum(_one_minus_p(logp).pow(i) / i for i in range(1, loss.t + 1)),
}


class HeadLogProb(torch.autograd.Function):
    """log p_y of the logits z = e W^T + b, computed over class chunks: never a [B, C] tensor.

    Forward keeps a running logsumexp (and argmax) over chunks of ``chunk``
    classes; backward recomputes each chunk's logits and uses
    d log p_y / d z_k = 1[k = y] - p_k, so de = g (W_y - sum_k p_k W_k),
    dW_k = sum_i g_i (1[k = y_i] - p_ik) e_i, db_k = sum_i g_i (1[k = y_i] - p_ik).
    Peak memory O(B * chunk) on top of the inputs and the gradient of W.
    """

    @staticmethod
    def forward(ctx: Any, e: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor,
                chunk: int) -> tuple[Tensor, Tensor]:
        rows = torch.arange(len(target), device=e.device)
        lse = torch.full((len(target),), float("-inf"), dtype=e.dtype, device=e.device)
        best, arg = lse.clone(), torch.zeros_like(target)
        z_y = torch.zeros_like(lse)
        for start in range(0, weight.shape[0], chunk):
            z = e @ weight[start : start + chunk].T
            if bias is not None:
                z += bias[start : start + chunk]
            lse = torch.logaddexp(lse, z.logsumexp(1))
            top, where = z.max(1)
            better = top > best
            best, arg = torch.where(better, top, best), torch.where(better, where + start, arg)
            inside = (target >= start) & (target < start + z.shape[1])
            z_y = torch.where(inside, z[rows, (target - start).clamp(0, z.shape[1] - 1)], z_y)
        ctx.save_for_backward(e, weight, bias, target, lse)
        ctx.chunk = chunk
        ctx.mark_non_differentiable(arg)
        return z_y - lse, arg

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor, _unused: Tensor) -> tuple[Tensor | None, ...]:
        e, weight, bias, target, lse = ctx.saved_tensors
        grad_e = grad[:, None] * weight[target]
        grad_w = torch.zeros_like(weight).index_add_(0, target, grad[:, None] * e)
        grad_b = None if bias is None else torch.zeros_like(bias).index_add_(0, target, grad)
        for start in range(0, weight.shape[0], ctx.chunk):
            w = weight[start : start + ctx.chunk]
            z = e @ w.T
            if bias is not None:
                z += bias[start : start + ctx.chunk]
            dz = (z - lse[:, None]).exp_().mul_(-grad[:, None])
            grad_e += dz @ w
            grad_w[start : start + ctx.chunk] += dz.T @ e
            if grad_b is not None:
                grad_b[start : start + ctx.chunk] += dz.sum(0)
        return grad_e, grad_w, grad_b, None, None


@torch.no_grad()
def chunked_argmax(e: Tensor, weight: Tensor, bias: Tensor | None, chunk: int) -> Tensor:
    """argmax_k (e W^T + b)_k row by row, over class chunks."""
    best = torch.full((len(e),), float("-inf"), dtype=e.dtype, device=e.device)
    arg = torch.zeros(len(e), dtype=torch.long, device=e.device)
    for start in range(0, weight.shape[0], chunk):
        z = e @ weight[start : start + chunk].T
        if bias is not None:
            z += bias[start : start + chunk]
        top, where = z.max(1)
        better = top > best
        best, arg = torch.where(better, top, best), torch.where(better, where + start, arg)
    return arg


@register_loss("cce")
class CutCrossEntropy(Loss):
    """Any loss of p_y alone, -log p_y = logsumexp_k z_k - z_y, from z = e W^T + b never materialised.

    CE and every comp-sum loss, GCE, MAE, focal, poly-1, RCE, SCE (lossbench's
    RCE is -A (1 - p_y) exactly) and Taylor-CE depend on the logits only
    through p_y (``P_Y_FORMS``), so ``loss=cce loss.inner=NAME`` trains them
    from the penultimate features e and the head (W, b) without the [B, C]
    logits: at tens of thousands of classes the logits, not the network, are
    what fills the memory. A loss that reads the whole distribution (label
    smoothing, NCE, MSE, ...) is refused.

    ``backend``: ``chunked`` (default; lossbench's own, any device) computes
    log p_y over chunks of ``chunk`` classes and recomputes them in backward
    (``HeadLogProb``); ``cce`` is the Cut Cross-Entropy Triton kernel of the
    ``cut-cross-entropy`` package (CUDA only; its default gradient filtering,
    ``filter_eps='high'``, skips entries below float precision); ``torch_compile``
    is that package's non-kernel path (logits inside one torch.compile'd graph,
    which needs a C++ compiler on CPU). The bias of the head enters as a last
    feature of 1. On the materialised-logits path (``compute``, e.g. the
    generic tests) the same function of p_y is applied to log_softmax(z).

    Erik Wijmans, Brody Huval, Alexander Hertzberg, Vladlen Koltun, Philipp
    Kraehenbuehl 2025, "Cut Your Losses in Large-Vocabulary Language Models", ICLR.
    """

    family = "comp-sum"
    paper = "Wijmans et al. 2025"
    needs_head = True

    def __init__(self, inner: str = "ce", backend: str = "chunked", chunk: int = 4096,
                 inner_kwargs: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if inner not in P_Y_FORMS:
            raise ValueError(f"loss=cce computes the loss from p_y alone, and inner loss '{inner}' is not a "
                             f"function of p_y alone here; known: {', '.join(P_Y_FORMS)}")
        if backend not in CCE_BACKENDS:
            raise ValueError(f"unknown cce backend '{backend}'; known: {', '.join(CCE_BACKENDS)}")
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"cce needs an integer chunk >= 1 (classes per chunk), got {chunk!r}")
        if backend != "chunked":
            try:
                import cut_cross_entropy  # noqa: F401
            except ImportError:
                from lossbench.core.extras import hint

                raise ValueError(f"{hint('cce', f'loss.backend={backend}')}; or loss.backend=chunked, "
                                 f"which needs nothing") from None
        if isinstance(inner_kwargs, DictConfig):
            inner_kwargs = OmegaConf.to_container(inner_kwargs, resolve=True)
        cls = LOSSES.get(inner)
        try:
            self.inner = cls(**dict(inner_kwargs or {}))
        except TypeError as exc:
            raise ValueError(f"cce: inner_kwargs do not fit loss '{inner}': {exc}") from exc
        self.inner_name, self.backend, self.chunk = inner, backend, chunk
        self.form = P_Y_FORMS[inner]

    def of_log_p(self, logp_y: Tensor) -> Tensor:
        """The inner loss as the function of log p_y it is."""
        return self.form(self.inner, logp_y)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.of_log_p(gather(logits.log_softmax(dim=1), target))

    def prepare(self, labels: Tensor, batch_size: int, device: torch.device) -> None:
        if self.backend == "cce" and (device.type != "cuda" or not torch.cuda.is_available()):
            raise ValueError(f"loss.backend=cce runs the Cut Cross-Entropy Triton kernel, which needs a CUDA "
                             f"device, and the run's device is {device.type}; use loss.backend=chunked")

    def head_loss(self, features: Tensor, head: nn.Linear, target: Tensor,
                  index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(per-sample inner loss [B], predicted classes [B]) from the features [B, D] and the head."""
        target = target.long()
        with torch.autocast(device_type=features.device.type, enabled=False):
            dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
            e, weight = features.to(dtype), head.weight.to(dtype)
            bias = None if head.bias is None else head.bias.to(dtype)
            if self.backend == "chunked":
                logp, pred = HeadLogProb.apply(e, weight, bias, target, self.chunk)
            else:
                from cut_cross_entropy import linear_cross_entropy

                if bias is not None:
                    e = torch.cat([e, torch.ones_like(e[:, :1])], dim=1)
                    weight = torch.cat([weight, bias[:, None]], dim=1)
                logp = -linear_cross_entropy(e, weight, target, reduction="none", impl=self.backend)
                pred = chunked_argmax(e.detach(), weight.detach(), None, self.chunk)
            return self.of_log_p(logp.clamp(max=0.0)), pred

    def hyperparameters(self) -> dict[str, Any]:
        return {"inner": self.inner_name, "backend": self.backend, "chunk": self.chunk,
                "inner_kwargs": self.inner.hyperparameters()}

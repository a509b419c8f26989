"""The post-hoc calibrator contract: fitted on validation logits and labels, applied to test logits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from lossbench.core.registry import Registry

CALIBRATORS: Registry = Registry("calibrator")
register_calibrator = CALIBRATORS.register


@dataclass
class Fitted:
    """A calibrator fitted on one validation view.

    ``apply(logits, views)`` gives calibrated logits (any representative of the
    calibrated log-probabilities: softmax(apply(z)) is the calibrated
    distribution); ``params`` holds the fitted tensors (their total size is the
    calibrator's parameter count); ``info`` holds scalars for summary.json
    (names without the calibrator's prefix, e.g. ``reg_lambda``).
    """

    apply: Callable[[Tensor, Tensor | None], Tensor]
    params: dict[str, Tensor]
    info: dict[str, float] = field(default_factory=dict)

    @property
    def num_params(self) -> int:
        return int(sum(t.numel() for t in self.params.values()))

    def __call__(self, logits: Tensor, views: Tensor | None = None) -> Tensor:
        return self.apply(logits, views)


class Calibrator:
    """Base class: hyperparameters in ``__init__`` (checked there), maths in ``fit``.

    Class attributes: ``key`` (the short name in summary keys, test_<m>_<key>_<view>),
    ``title`` (for legends), ``paper``, ``needs_views`` (True when the
    calibrator reads the model's logits on transformed copies of each input,
    served by lossbench.calibrate.views as a [V, N, C] tensor).
    """

    key: ClassVar[str] = ""
    title: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    needs_views: ClassVar[bool] = False

    seed: int = 0

    def view_names(self, is_image: bool) -> list[str]:
        """The views (lossbench.calibrate.views) a ``needs_views`` calibrator reads, seeded with ``seed``."""
        raise NotImplementedError

    def num_params(self, num_classes: int) -> int:
        """Parameters the fit estimates for ``num_classes`` classes (before any data is seen)."""
        raise NotImplementedError

    def min_samples(self, num_classes: int) -> int:
        """Fewest validation samples the fit accepts (default: one)."""
        return 1

    def check(self, num_val: int, num_classes: int) -> None:
        """Refuse before training when the validation split cannot support the fit (ValueError)."""
        need = self.min_samples(num_classes)
        if num_val < need:
            raise ValueError(
                f"calibrator {self.registry_name} fits {self.num_params(num_classes)} parameters for "
                f"{num_classes} classes and needs at least {need} validation samples; the validation split "
                f"has {num_val} (raise dataset.val_size, add regularisation, or drop this calibrator)"
            )

    def fit(self, logits: Tensor, labels: Tensor, views: Tensor | None = None) -> Fitted:
        raise NotImplementedError


def lbfgs(params: list[Tensor], objective: Callable[[], Tensor], max_iter: int = 500) -> None:
    """Minimise ``objective`` over ``params`` (float64 leaves) with L-BFGS and a strong-Wolfe line search."""
    optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, tolerance_grad=1e-10,
                                  tolerance_change=1e-14, history_size=50, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    optimizer.step(closure)


def newton(theta: Tensor, objective: Callable[[Tensor], Tensor], max_iter: int = 100,
           gtol: float = 1e-10) -> Tensor:
    """argmin of a smooth convex ``objective`` of a flat float64 vector by Newton's method
    (exact Hessian by autograd, least-squares step, halving line search); stops when the summed
    |gradient| is below ``gtol`` or no step lowers the objective. For a few hundred parameters."""
    theta = theta.detach().clone()
    value = objective(theta)
    for _ in range(max_iter):
        grad = torch.autograd.functional.jacobian(objective, theta)
        if grad.abs().sum() < gtol:
            break
        hessian = torch.autograd.functional.hessian(objective, theta)
        step = torch.linalg.lstsq(hessian, grad.unsqueeze(1)).solution.squeeze(1)
        for size in (0.5**k for k in range(40)):
            candidate = theta - size * step
            new = objective(candidate)
            if new < value:
                break
        else:
            break
        done = value - new < 1e-15
        theta, value = candidate, new
        if done:
            break
    return theta

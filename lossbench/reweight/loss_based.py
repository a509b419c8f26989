"""Dynamic instance-level weights from the batch's losses (Sow et al. 2025)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lossbench.reweight.base import Reweighter, register_reweight

# f(h, delta) on the normalized loss h in [-delta, delta].
STRATEGIES: dict[str, Callable[[Tensor, float], Tensor]] = {
    # weight grows with the loss up to the batch's mid-range loss, then stays flat
    "linupper": lambda h, delta: torch.minimum(h + delta, torch.full_like(h, delta)),
    # favours medium losses: 1 at the middle, 0 at both extremes
    "quadratic": lambda h, delta: 1.0 - h.square() / delta**2,
    # favours both the lowest and the highest losses
    "extremes": lambda h, delta: h.abs(),
}


@register_reweight("loss_based")
class LossBased(Reweighter):
    """Per-sample weights from a function of each sample's loss within the batch.

    For the batch's losses l_i (detached):
    1. min-max normalize to [-delta, delta]:
       h_i = delta (2 l_i - l_max - l_min) / max(l_max - l_min, 1e-6);
    2. score with the chosen strategy f:
       ``linupper`` f = min(h + delta, delta),
       ``quadratic`` f = 1 - h^2 / delta^2,
       ``extremes`` f = |h|;
    3. w_i = B softmax_i(f_i / temperature), i.e. the maximizer of
       sum_i w_i f_i - temperature KL(w || uniform) rescaled to mean 1.
    A small temperature sharpens the weights; a large one flattens them to 1.
    For the first ``burnout_epochs`` epochs every weight is 1 (plain mean).

    Sow, Woisetschlaeger, Bulusu, Wang, Jacobsen, Liang 2025, "Dynamic
    Loss-Based Sample Reweighting for Improved Large Language Model
    Pretraining", ICLR. Steps 1-3 follow the authors' code (h_func, f_func_*,
    g_func; ``temperature`` is its ``kl_reg``, default 1; delta = 1 there); the
    code's ``burnout_steps`` warm-up is counted here in epochs. The code also
    holds a plain linear variant (f = (h + delta) / 2), not among the paper's
    three named strategies and not offered here.
    """

    paper = "Sow et al. 2025"

    def __init__(
        self,
        strategy: str = "linupper",
        temperature: float = 1.0,
        delta: float = 1.0,
        burnout_epochs: int = 0,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown reweight.strategy '{strategy}'; known: {', '.join(STRATEGIES)}")
        if not float(temperature) > 0:
            raise ValueError(f"reweight.temperature must be positive, got {temperature}")
        if not float(delta) > 0:
            raise ValueError(f"reweight.delta must be positive, got {delta}")
        if isinstance(burnout_epochs, bool) or not isinstance(burnout_epochs, int) or burnout_epochs < 0:
            raise ValueError(f"reweight.burnout_epochs must be an integer >= 0, got {burnout_epochs!r}")
        self.strategy = strategy
        self.temperature = float(temperature)
        self.delta = float(delta)
        self.burnout_epochs = burnout_epochs
        self.active = burnout_epochs == 0

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        self.active = epoch >= self.burnout_epochs

    def weights(self, losses: Tensor, target: Tensor, index: Tensor) -> Tensor | None:
        if not self.active:
            return None
        return loss_based_weights(losses, self.strategy, self.temperature, self.delta)


def loss_based_weights(
    losses: Tensor, strategy: str = "linupper", temperature: float = 1.0, delta: float = 1.0
) -> Tensor:
    """Mean-1 weights of Sow et al. 2025 for one batch of per-sample losses (see LossBased)."""
    lo = losses.detach().float()
    l_min, l_max = lo.min(), lo.max()
    h = delta * (2.0 * lo - l_max - l_min) / (l_max - l_min).clamp_min(1e-6)
    f = STRATEGIES[strategy](h, delta)
    return (f / temperature).softmax(0) * lo.numel()

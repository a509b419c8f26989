"""Learning-rate schedules of lossbench's own, and when a schedule is stepped.

torch's schedulers (``conf/scheduler/cosine.yaml``, ``multistep``, ``none``) are stepped once per
epoch. A scheduler class that sets ``interval = "step"`` is stepped after every optimizer step
instead (``steps_per_batch``); the trainer and the packed trainer serve that in one place each, and
its state (the number of steps taken) is in every checkpoint, mid-epoch ones included.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LRScheduler

INTERVALS = ("epoch", "step")


def steps_per_batch(scheduler: object) -> bool:
    """Whether ``scheduler`` is stepped after every optimizer step (``interval = "step"``)."""
    return getattr(scheduler, "interval", "epoch") == "step"


class ExponentialDecay(LRScheduler):
    """lr_t = lr_0 * decay_rate ^ (t / decay_steps), t the number of optimizer steps taken
    (``staircase``: floor(t / decay_steps)); stepped after every optimizer step.

    Keras's ``ExponentialDecay`` schedule, as the [Re] reproduction of Menon et al. 2020 runs it
    (dmizr/phuber ``phuber/scheduler.py``, stepped per iteration; MNIST: lr_0 1e-3, decay_rate 0.1,
    decay_steps 10000, staircase false). Each lr is computed from t in closed form, so a resumed run
    continues exactly.
    """

    interval = "step"

    def __init__(self, optimizer: torch.optim.Optimizer, decay_rate: float, decay_steps: int,
                 staircase: bool = False, last_epoch: int = -1) -> None:
        if not decay_rate > 0:
            raise ValueError(f"scheduler.decay_rate must be > 0, got {decay_rate}")
        if not isinstance(decay_steps, int) or isinstance(decay_steps, bool) or decay_steps <= 0:
            raise ValueError(f"scheduler.decay_steps must be a positive integer, got {decay_steps}")
        if not isinstance(staircase, bool):
            raise ValueError(f"scheduler.staircase must be true or false, got {staircase}")
        self.decay_rate = float(decay_rate)
        self.decay_steps = decay_steps
        self.staircase = staircase
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        """decay_rate ^ (step / decay_steps), the exponent floored when ``staircase``."""
        exponent = step / self.decay_steps
        return self.decay_rate ** (math.floor(exponent) if self.staircase else exponent)

    def get_lr(self) -> list[float]:
        return [base * self.factor(self.last_epoch) for base in self.base_lrs]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()

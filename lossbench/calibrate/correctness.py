"""Correctness-aware calibration: a per-sample temperature read from transformed views (Liu et al. 2024)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lossbench.calibrate.base import Calibrator, Fitted, register_calibrator
from lossbench.calibrate.views import FEATURE_VIEWS, IMAGE_VIEWS, view_op

T_RANGE = (0.1, 10.0)
TEMPERATURE_MAPS = ("smooth", "clamp")


def view_features(logits: Tensor, views: Tensor, top_k: int) -> Tensor:
    """u_i: for each view v, softmax(view logits)_v at the original's top-k classes: [N, V k].

    The calibrator's input in the official code (p2topk1, p3topk1, p4topk1: each
    transformed view's probabilities at the top-4 classes of the original).
    """
    k = min(top_k, logits.shape[1])
    top = logits.topk(k, dim=1).indices  # [N, k]
    probs = views.float().softmax(dim=2)  # [V, N, C]
    picked = probs.gather(2, top.unsqueeze(0).expand(len(views), -1, -1))  # [V, N, k]
    return picked.permute(1, 0, 2).reshape(len(logits), -1)


def balanced_weights(correct: Tensor) -> Tensor:
    """Class-balanced weights of correct and wrong predictions: w = 1 - a if correct, a if wrong,
    a = share of correct ones (uniform when all are correct or all are wrong)."""
    a = correct.float().mean()
    if a.item() in (0.0, 1.0):
        return torch.ones_like(correct, dtype=torch.float32)
    return torch.where(correct, 1.0 - a, a)


def ca_loss(conf: Tensor, correct: Tensor, balanced: bool = True) -> Tensor:
    """sum_i w_i (conf_i - c_i)^2 / sum_i w_i: calibrated top-label confidence against correctness
    c_i = [argmax z_i = y_i], class-balanced (w from ``balanced_weights``; uniform when not ``balanced``)."""
    w = balanced_weights(correct) if balanced else torch.ones_like(conf)
    return (w * (conf - correct.float()) ** 2).sum() / w.sum()


class _TemperatureNet(nn.Module):
    """u -> T(u) in [0.1, 10]: Linear(d, h), ReLU, Linear(h, 1), then the temperature map."""

    def __init__(self, dim: int, hidden: int, temperature_map: str) -> None:
        super().__init__()
        self.hidden = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, 1)
        self.temperature_map = temperature_map
        if temperature_map == "smooth":  # start at T = 1: the uncalibrated model
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, u: Tensor) -> Tensor:
        s = self.out(F.relu(self.hidden(u))).squeeze(1)
        low, high = T_RANGE
        if self.temperature_map == "clamp":
            return s.clamp(low, high)
        return torch.exp(math.log(low) + (math.log(high) - math.log(low)) * torch.sigmoid(s))


@register_calibrator("ca")
class CorrectnessAware(Calibrator):
    """softmax(z / T(u)), a temperature per sample from the model's outputs on transformed views.

    Liu et al. 2024, "Optimizing Calibration by Gaining Aware of Prediction
    Correctness" (official code liuyvchi/Correctness-aware-calibration). u holds,
    for each of V views, the view's softmax at the original's top-k classes
    (V k numbers; V = 3, k = 4 there); T(u) is a one-hidden-layer network (5
    units); it is trained on validation with the CA loss, the class-balanced
    squared gap between the calibrated top-label confidence and correctness,
    sum_i w_i (max_k softmax(z_i / T(u_i))_k - [argmax z_i = y_i])^2 / sum_i w_i,
    w_i = 1 - a for correct and a for wrong predictions (a: the batch's share
    of correct ones). A positive temperature keeps every prediction, so accuracy
    is unchanged. The balance gives the few wrong predictions of an accurate
    model as much weight as all its correct ones, which pushes confidence down
    when the views do not tell the two apart; ``balanced: false`` (not the
    paper's) weighs every sample alike.

    Views (lossbench.calibrate.views): images get the paper's rotation,
    greyscale (a blur for single-channel images) and colour jitter; feature
    datasets, which have no image to transform, get three Gaussian-noise views
    (0.1, 0.2, 0.3 feature standard deviations): a stated substitute, not the paper's.

    Where lossbench differs from the official code (both reachable):
    ``temperature_map: smooth`` (default) maps the network's output s onto
    [0.1, 10] by log T = log 0.1 + log(100) sigmoid(s), started at T = 1; the
    code's ``clamp`` clips a linear output to [0.1, 10] (no gradient outside,
    PyTorch's default initialisation). The code trains with Adam, lr 1e-4,
    batches of 1,000, 10 epochs on half of ImageNet's validation set (about 250
    steps); lossbench's validation splits are 5-200 times smaller, so the
    default is lr 1e-2 and 200 epochs (``lr: 1e-4 epochs: 10 temperature_map:
    clamp`` is the code's setting).
    """

    key = "ca"
    title = "correctness-aware calibration"
    paper = "Liu et al. 2024"
    needs_views = True

    def __init__(self, views: Sequence[str] | None = None, top_k: int = 4, hidden: int = 5,
                 temperature_map: str = "smooth", lr: float = 1e-2, epochs: int = 200,
                 batch_size: int = 1000, seed: int = 0, balanced: bool = True) -> None:
        if views is not None:
            for name in views:
                view_op(name)  # raises for an unknown name
        if temperature_map not in TEMPERATURE_MAPS:
            raise ValueError(f"calibrator.ca.temperature_map must be one of {', '.join(TEMPERATURE_MAPS)}, "
                             f"got '{temperature_map}'")
        for name, value in (("top_k", top_k), ("hidden", hidden), ("epochs", epochs),
                            ("batch_size", batch_size)):
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"calibrator.ca.{name} must be a positive integer, got {value}")
        if not float(lr) > 0:
            raise ValueError(f"calibrator.ca.lr must be positive, got {lr}")
        self.views = list(views) if views is not None else None
        self.top_k, self.hidden, self.temperature_map = top_k, hidden, temperature_map
        self.lr, self.epochs, self.batch_size, self.seed = float(lr), epochs, batch_size, int(seed)
        self.balanced = bool(balanced)

    def view_names(self, is_image: bool) -> list[str]:
        """The views this calibrator reads: as configured, else the defaults for the input kind."""
        return self.views or list(IMAGE_VIEWS if is_image else FEATURE_VIEWS)

    def _dim(self, num_classes: int, num_views: int = 3) -> int:
        return num_views * min(self.top_k, num_classes)

    def num_params(self, num_classes: int) -> int:
        dim = self._dim(num_classes, len(self.views) if self.views else 3)
        return dim * self.hidden + self.hidden + self.hidden + 1

    def min_samples(self, num_classes: int) -> int:
        return 2

    def fit(self, logits: Tensor, labels: Tensor, views: Tensor | None = None) -> Fitted:
        if views is None:
            raise ValueError("calibrator ca needs the model's logits on transformed views of each input")
        z = logits.detach().float()
        u = view_features(z, views.detach(), self.top_k)
        correct = z.argmax(1) == labels
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = _TemperatureNet(u.shape[1], self.hidden, self.temperature_map).to(z.device)
            generator = torch.Generator().manual_seed(self.seed)
            optimizer = torch.optim.Adam(net.parameters(), lr=self.lr)
            n = len(z)
            for _ in range(self.epochs):
                for index in torch.randperm(n, generator=generator).to(z.device).split(self.batch_size):
                    t = net(u[index])
                    conf = (z[index] / t[:, None]).softmax(1).max(1).values
                    loss = ca_loss(conf, correct[index], self.balanced)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
        net.eval()
        top_k = self.top_k

        def temperatures(z_: Tensor, views_: Tensor) -> Tensor:
            with torch.no_grad():
                return net(view_features(z_.float(), views_, top_k))

        def apply(z_: Tensor, views_: Tensor | None = None) -> Tensor:
            if views_ is None:
                raise ValueError("calibrator ca needs the view logits of the inputs it calibrates")
            return z_.float() / temperatures(z_, views_)[:, None]

        t_val = temperatures(z, views)
        params = {k: v.detach().clone() for k, v in net.state_dict().items()}
        return Fitted(apply, params, {"ca_temperature_mean": t_val.mean().item(),
                                      "ca_temperature_std": t_val.std().item() if len(t_val) > 1 else 0.0})

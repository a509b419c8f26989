"""Attacks in pixel space: PGD (L-inf, L2; random start, restarts), FGSM, AutoAttack (torchattacks).

Every attack works on pixel-space inputs (``BatchTransform.pixels``: images as
floats in [0, 1], digit features pixel/16 in [0, 1]) and calls the model through
``PixelModel``, which applies the dataset's normalization inside the call, so
``eps`` means what papers mean: 8/255 on CIFAR, 0.3 on MNIST; on digits (pixel/16)
eps 0.1 is 1.6 of the 16 grey levels of the 8x8 images, lossbench's default there.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lossbench.core.registry import Registry
from lossbench.data.transforms import BatchTransform

ATTACKS: Registry = Registry("attack")
register_attack = ATTACKS.register

NORMS = ("linf", "l2")
# The budgets papers use per dataset (pixel space): L-inf (Madry et al. 2018 MNIST 0.3;
# TRADES / RobustBench CIFAR-10 8/255; Fashion-MNIST 0.1) and L2 (CIFAR 0.5, MNIST 2.0).
# digits' budgets (L-inf 0.1 = 1.6 of its 16 grey levels; L2 1.0) are lossbench's choice: at 0.3
# (4.8 grey levels of an 8x8 image) PGD takes a standard MLP to 0% and PGD-AT recovers little.
DEFAULT_EPS = {
    "linf": {"mnist": 0.3, "digits": 0.1, "fashion_mnist": 0.1, "cifar10": 8 / 255, "cifar100": 8 / 255,
             "svhn": 8 / 255, "synthetic_cifar10": 8 / 255},
    "l2": {"mnist": 2.0, "digits": 1.0, "fashion_mnist": 1.5, "cifar10": 0.5, "cifar100": 0.5, "svhn": 0.5,
           "synthetic_cifar10": 0.5},
}
AUTOATTACK_HINT = "pip install torchattacks==3.5.1"


class PixelModel(nn.Module):
    """The model seen from pixel space: logits = model(normalize(x)) for x in [0, 1], mapped by
    ``link`` when given (a loss's ``prediction_logits``: LegendreTron's learned link), so that an
    attack targets the predictor the run is scored on."""

    def __init__(self, model: nn.Module, transform: BatchTransform,
                 link: Callable[[Tensor], Tensor] | None = None) -> None:
        super().__init__()
        self.model = model
        self.transform = transform
        self.link = link

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(self.transform.normalize(x))
        logits = out[0] if isinstance(out, tuple) else out
        return logits if self.link is None else self.link(logits)


def require_pixel_space(split, who: str) -> None:
    """Refuse (ValueError) a dataset whose inputs are not uint8 images or float features in [0, 1]."""
    xs = [t for t in (split.x_train, split.x_val, split.x_test) if t.numel()]
    if all(t.dtype == torch.uint8 for t in xs):
        return
    lo = min(float(t.min()) for t in xs)
    hi = max(float(t.max()) for t in xs)
    if not (xs and all(t.is_floating_point() for t in xs) and lo >= 0.0 and hi <= 1.0):
        raise ValueError(
            f"{who} needs inputs in pixel space [0, 1] (uint8 images or features in [0, 1]); "
            f"dataset '{split.name}' has values in [{lo:.3g}, {hi:.3g}]"
        )


def resolve_eps(eps: float | None, norm: str, dataset: str, who: str) -> float:
    """``eps`` itself, or (null) the usual budget of ``dataset`` for ``norm`` (DEFAULT_EPS)."""
    if eps is not None:
        return float(eps)
    table = DEFAULT_EPS[norm]
    if dataset not in table:
        raise ValueError(f"{who}.eps=null has no default for dataset '{dataset}' ({norm}); "
                         f"set {who}.eps (known defaults: {', '.join(table)})")
    return table[dataset]


def check_budget(who: str, eps: float | None, steps: int, step_size: float | None, norm: str,
                 restarts: int = 1) -> None:
    """One clear ValueError for an impossible attack setting."""
    if norm not in NORMS:
        raise ValueError(f"unknown {who}.norm '{norm}'; known: {', '.join(NORMS)}")
    if eps is not None and not float(eps) >= 0:
        raise ValueError(f"{who}.eps must be >= 0 (or null for the dataset's usual budget), got {eps}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"{who}.steps must be an integer >= 1, got {steps!r}")
    if step_size is not None and not float(step_size) > 0:
        raise ValueError(f"{who}.step_size must be positive (or null for 2.5 eps / steps), got {step_size}")
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 1:
        raise ValueError(f"{who}.restarts must be an integer >= 1, got {restarts!r}")


def _flat_norm(t: Tensor) -> Tensor:
    """Per-sample L2 norm, shaped to broadcast against ``t``."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.ndim - 1)))


def project(x_adv: Tensor, x: Tensor, eps: float, norm: str) -> Tensor:
    """Nearest point of the eps-ball around ``x`` (L-inf: clip each coordinate; L2: rescale the
    perturbation to norm eps when longer), then clipped to the [0, 1] box. Clipping to the box
    only moves a coordinate towards x (x is in the box), so the result stays in the ball."""
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * (eps / _flat_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
    return (x + delta).clamp(0.0, 1.0)


def random_start(x: Tensor, eps: float, norm: str, generator: torch.Generator | None) -> Tensor:
    """A random point of the eps-ball (in the box).

    L-inf: delta ~ U[-eps, eps] per coordinate (Madry et al. 2018). L2: a Gaussian direction
    scaled to length eps * u, u ~ U[0, 1] (torchattacks' PGDL2 start).
    """
    if norm == "linf":
        delta = torch.empty_like(x).uniform_(-eps, eps, generator=generator)
    else:
        delta = torch.empty_like(x).normal_(generator=generator)
        r = torch.empty((len(x), *([1] * (x.ndim - 1))), device=x.device, dtype=x.dtype).uniform_(
            0, 1, generator=generator)
        delta = delta / _flat_norm(delta).clamp_min(1e-12) * r * eps
    return (x + delta).clamp(0.0, 1.0)


def pgd(objective: Callable[[Tensor], Tensor], x: Tensor, eps: float, step_size: float, steps: int,
        norm: str = "linf", start: Tensor | None = None) -> Tensor:
    """Projected gradient ascent of ``sum_i objective(x')_i`` over the eps-ball and the [0, 1] box.

    x'_{t+1} = Proj(x'_t + step_size * g), g = sign(grad) (L-inf) or grad / ||grad||_2 (L2),
    from ``start`` (x itself when None). Madry, Makelov, Schmidt, Tsipras, Vladu 2018, "Towards
    Deep Learning Models Resistant to Adversarial Attacks", ICLR.
    """
    x = x.detach()
    x_adv = (x if start is None else start).detach().clone()
    if eps == 0:
        return x_adv.copy_(x)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            value = objective(x_adv).sum()
            (grad,) = torch.autograd.grad(value, x_adv)
        with torch.no_grad():
            if norm == "linf":
                step = grad.sign()
            else:
                step = grad / (_flat_norm(grad) + 1e-10)
            x_adv = project(x_adv.detach() + step_size * step, x, eps, norm)
    return x_adv.detach()


def ce_objective(model: Callable[[Tensor], Tensor], target: Tensor) -> Callable[[Tensor], Tensor]:
    """The untargeted attack objective: per-sample cross-entropy at the (given) label."""
    return lambda x_adv: F.cross_entropy(model(x_adv).float(), target, reduction="none")


@contextlib.contextmanager
def eval_mode(model: nn.Module, enabled: bool = True):
    """Batch norm (and dropout) in eval mode inside the block, the previous mode restored after."""
    was = model.training
    if enabled:
        model.eval()
    try:
        yield
    finally:
        model.train(was)


class Attack:
    """An evaluation attack: ``attack(model, x, y, generator) -> x_adv`` on pixel inputs [0, 1].

    ``model`` maps pixel inputs to logits (a ``PixelModel``); ``generator`` draws the random
    start on x's device. ``setup(split)`` resolves eps=null to the dataset's usual budget.
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""

    def setup(self, split) -> None:
        """Resolve dataset-dependent settings before the first call."""

    def settings(self) -> dict:
        """What summary.json records about the attack."""
        return {}

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError


@register_attack("pgd")
class PGD(Attack):
    """PGD-k: k steps of projected gradient ascent on the cross-entropy (see ``pgd``).

    ``norm`` linf | l2; ``step_size`` null = 2.5 eps / steps (Madry et al. 2018's rule: 2/255 for
    eps 8/255 and 10 steps); ``random_start`` uniform in the ball; ``restarts`` > 1 repeats from new
    random starts and keeps, per sample, the first example that fools the model (else the last).
    Madry et al. 2018, "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR.
    """

    paper = "Madry et al. 2018"

    def __init__(self, eps: float | None = None, steps: int = 20, step_size: float | None = None,
                 norm: str = "linf", random_start: bool = True, restarts: int = 1) -> None:
        check_budget("attack", eps, steps, step_size, norm, restarts)
        self.eps, self.steps, self.norm = eps, steps, norm
        self.step_size = step_size
        self.random_start = bool(random_start)
        self.restarts = restarts

    def setup(self, split) -> None:
        self.eps = resolve_eps(self.eps, self.norm, split.name, "attack")
        if self.step_size is None:
            self.step_size = 2.5 * self.eps / self.steps

    def settings(self) -> dict:
        return dict(norm=self.norm, eps=self.eps, steps=self.steps, step_size=self.step_size,
                    random_start=self.random_start, restarts=self.restarts)

    def __call__(self, model, x, y, generator=None):
        objective = ce_objective(model, y)
        best, fooled = x.detach().clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for _ in range(self.restarts):
            start = random_start(x, self.eps, self.norm, generator) if self.random_start else None
            x_adv = pgd(objective, x, self.eps, self.step_size, self.steps, self.norm, start)
            with torch.no_grad():
                keep = fooled.view(-1, *([1] * (x.ndim - 1)))
                best = torch.where(keep, best, x_adv)
                fooled |= model(x_adv).argmax(1) != y
        return best


@register_attack("fgsm")
class FGSM(PGD):
    """Fast gradient sign method: x' = clip(x + eps sign(grad_x CE(f(x), y)), 0, 1), one step, no
    random start (or one normalized-gradient step of length eps for L2).
    Goodfellow, Shlens, Szegedy 2015, "Explaining and Harnessing Adversarial Examples", ICLR.
    """

    paper = "Goodfellow et al. 2015"

    def __init__(self, eps: float | None = None, norm: str = "linf") -> None:
        super().__init__(eps=eps, steps=1, step_size=None, norm=norm, random_start=False, restarts=1)

    def setup(self, split) -> None:
        self.eps = resolve_eps(self.eps, self.norm, split.name, "attack")
        self.step_size = self.eps


@register_attack("autoattack")
class AutoAttack(Attack):
    """AutoAttack, standard version (APGD-CE, APGD-T, FAB-T, Square), through torchattacks.

    Croce and Hein 2020, "Reliable Evaluation of Adversarial Robustness with an Ensemble of
    Diverse Parameter-free Attacks", ICML. Needs the optional extra: pip install torchattacks==3.5.1.
    Its random draws come from its own ``seed`` (the global RNG is restored afterwards).
    """

    paper = "Croce and Hein 2020"

    def __init__(self, eps: float | None = None, norm: str = "linf", version: str = "standard",
                 seed: int = 0) -> None:
        check_budget("attack", eps, 1, None, norm)
        try:
            import torchattacks  # noqa: F401
        except ImportError:
            raise ImportError(f"attack=autoattack needs torchattacks: {AUTOATTACK_HINT}") from None
        if version not in ("standard", "plus", "rand"):
            raise ValueError(f"unknown attack.version '{version}'; known: standard, plus, rand")
        self.eps, self.norm, self.version, self.seed = eps, norm, version, int(seed)
        self.num_classes: int | None = None

    def setup(self, split) -> None:
        self.eps = resolve_eps(self.eps, self.norm, split.name, "attack")
        self.num_classes = split.num_classes

    def settings(self) -> dict:
        return dict(norm=self.norm, eps=self.eps, version=self.version, seed=self.seed,
                    library="torchattacks")

    def __call__(self, model, x, y, generator=None):
        import torchattacks

        attack = torchattacks.AutoAttack(model, norm={"linf": "Linf", "l2": "L2"}[self.norm], eps=self.eps,
                                         version=self.version, n_classes=self.num_classes, seed=self.seed)
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            if x.ndim == 4:
                return attack(x, y).detach()
            # torchattacks' FAB and Square expect images: present features [B, D] as [B, 1, 1, D]
            attack.model = _Reshaped(model, x.shape[1:])
            return attack(x.reshape(len(x), 1, 1, -1), y).detach().reshape(x.shape)


class _Reshaped(nn.Module):
    """``model`` applied to inputs reshaped back to ``shape`` (per sample)."""

    def __init__(self, model: nn.Module, shape: torch.Size) -> None:
        super().__init__()
        self.model, self.shape = model, tuple(shape)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x.reshape(len(x), *self.shape))


def step_size_or_default(step_size: float | None, eps: float, steps: int) -> float:
    """``step_size``, or 2.5 eps / steps when null (Madry et al. 2018)."""
    return float(step_size) if step_size is not None else 2.5 * eps / steps


def kl_rows(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """Per-sample KL(softmax(p) || softmax(q)) = sum_c p_c (log p_c - log q_c), in float32."""
    logp, logq = p_logits.float().log_softmax(1), q_logits.float().log_softmax(1)
    return (logp.exp() * (logp - logq)).sum(1)


def score_distance(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample L2 distance ||a - b||_2 between score vectors, with a finite gradient at 0."""
    return ((a.float() - b.float()).square().sum(1) + 1e-12).sqrt() - math.sqrt(1e-12)

"""Importance reweighting with a transition matrix (Liu and Tao 2016) and RENT (Bae et al. 2024)."""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench.losses.base import Loss
from lossbench.reweight.base import normalize_mean_one, register_reweight
from lossbench.reweight.transition import TransitionReweighter, importance_weights

SAMPLERS = ("multinomial", "dirichlet")


class _RatioWeights(TransitionReweighter):
    """Computes beta = p(y~ | x) / (T^T p(x))_y~ from the logits in per_sample_loss for weights()."""

    def __init__(
        self, transition: bool | str = "true", warmup_epochs: int = 10, anchor_quantile: float = 0.97
    ) -> None:
        super().__init__(transition, warmup_epochs, anchor_quantile)
        self._beta: Tensor | None = None

    def per_sample_loss(
        self, loss: Loss, logits: Tensor, target: Tensor, features: Tensor | None = None,
        index: Tensor | None = None,
    ) -> Tensor:
        if self.T is None:
            raise RuntimeError(f"{self.registry_name}: setup() was not called")
        self._beta = importance_weights(logits, target, self.T)
        return loss(logits, target, features, index)

    def _take_beta(self, target: Tensor) -> Tensor:
        beta, self._beta = self._beta, None
        if beta is None or beta.shape != target.shape:
            raise RuntimeError(
                f"{self.registry_name}: weights() must follow per_sample_loss() on the same batch"
            )
        return beta


@register_reweight("importance")
class ImportanceReweighting(_RatioWeights):
    """w_i = p(clean = y~_i | x_i) / p(noisy = y~_i | x_i), rescaled to mean 1 per batch.

    p(clean | x) is the model's softmax (detached) and p(noisy | x) = T^T p(clean | x).
    Under class-conditional noise and with the true posteriors, the expectation
    of w l over the noisy distribution is the clean risk (before the per-batch
    rescaling): a sample whose label the model finds implausible as a clean
    label gets a small weight. Pure weights on the run's loss: any loss combines.

    Liu and Tao 2016, "Classification with Noisy Labels by Importance
    Reweighting", IEEE TPAMI 38(3). The paper fits p(noisy | x) with a separate
    probabilistic classifier and derives the clean posterior through T; here,
    as in the deep-network reweighting baselines (Xia et al. 2019, T-Revision;
    the RENT code), the network's own softmax is the clean posterior.
    """

    paper = "Liu and Tao 2016"

    def weights(self, losses: Tensor, target: Tensor, index: Tensor) -> Tensor:
        return normalize_mean_one(self._take_beta(target).to(losses.dtype))


@register_reweight("rent")
class RENT(_RatioWeights):
    """RENT: resample each batch in proportion to the transition-matrix importance weights.

    beta_i = p(clean = y~_i | x_i) / (T^T p(x_i))_y~_i as in ``importance``, and
    pi = beta / sum(beta) over the batch of B samples.
    ``sampler: multinomial`` (RENT): draw M = round(resample_ratio * B) indices
    with replacement from pi; the loss is the mean over the drawn samples, i.e.
    w_i = B k_i / M with k_i the times sample i was drawn (mean 1).
    ``sampler: dirichlet`` (DWS, the paper's Dirichlet-based per-sample weight
    sampling): w = B mean_{d=1..B} w^(d), w^(d) ~ Dir(alpha pi). Large alpha
    tends to reweighting (w -> B pi); small alpha to resampling.
    Randomness comes from torch's global generator, which the trainer seeds
    and saves in checkpoints. Pure weights: any loss combines.

    Bae, Shin, Na, Moon 2024, "Dirichlet-based Per-Sample Weighting by
    Transition Matrix for Noisy Label Learning", ICLR. The in-batch resampling
    with ratio N (``resample_ratio``, default 1) follows the authors' code
    (``sample_batch``); so does averaging batch-size Dirichlet draws in DWS.
    """

    paper = "Bae et al. 2024"

    def __init__(
        self,
        transition: bool | str = "true",
        warmup_epochs: int = 10,
        anchor_quantile: float = 0.97,
        sampler: str = "multinomial",
        resample_ratio: float = 1.0,
        alpha: float = 1.0,
    ) -> None:
        super().__init__(transition, warmup_epochs, anchor_quantile)
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown reweight.sampler '{sampler}'; known: {', '.join(SAMPLERS)}")
        if not float(resample_ratio) > 0:
            raise ValueError(f"reweight.resample_ratio must be positive, got {resample_ratio}")
        if not float(alpha) > 0:
            raise ValueError(f"reweight.alpha must be positive, got {alpha}")
        self.sampler = sampler
        self.resample_ratio = float(resample_ratio)
        self.alpha = float(alpha)

    def weights(self, losses: Tensor, target: Tensor, index: Tensor) -> Tensor:
        beta = self._take_beta(target)
        return rent_weights(beta, self.sampler, self.resample_ratio, self.alpha).to(losses.dtype)


def rent_weights(
    beta: Tensor, sampler: str = "multinomial", resample_ratio: float = 1.0, alpha: float = 1.0
) -> Tensor:
    """Mean-1 weights of one RENT (multinomial) or DWS (dirichlet) draw for importance weights beta."""
    b = beta.numel()
    pi = beta.double().clamp_min(0) + 1e-12
    pi = pi / pi.sum()
    if sampler == "multinomial":
        m = max(1, round(resample_ratio * b))
        drawn = torch.multinomial(pi, m, replacement=True)
        return torch.bincount(drawn, minlength=b).float() * (b / m)
    if sampler == "dirichlet":
        w = torch.distributions.Dirichlet(alpha * pi).sample((b,)).mean(0)
        return normalize_mean_one(w).float()
    raise ValueError(f"unknown RENT sampler '{sampler}'; known: {', '.join(SAMPLERS)}")

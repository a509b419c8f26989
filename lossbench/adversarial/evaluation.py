"""Robust test accuracy: an attack on a fixed, seeded subset of the test set (config group ``attack``)."""

from __future__ import annotations

import torch
from torch import nn

from lossbench.adversarial.attacks import Attack, PixelModel, eval_mode, require_pixel_space
from lossbench.data.transforms import BatchTransform


class RobustEvaluation:
    """Accuracy under ``attack`` on ``size`` test samples (null: all), drawn once with ``seed``.

    The model is attacked in eval mode (batch norm frozen) through ``PixelModel``; the random
    start comes from a generator seeded with ``seed`` at every evaluation, so the figure does not
    depend on when it is computed and training's random streams are untouched (a resumed run gets
    the same numbers). ``every`` > 0 also records ``test_robust_acc`` in metrics.jsonl every that
    many epochs (and at the last); 0 computes it once, at the end, into summary.json only.
    """

    def __init__(self, attack: Attack, size: int | None = 1000, every: int = 0, seed: int = 0,
                 batch_size: int = 500) -> None:
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(f"attack.size must be a positive integer or null (whole test set), got {size!r}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ValueError(f"attack.every must be an integer >= 0, got {every!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"attack.batch_size must be a positive integer, got {batch_size!r}")
        self.attack, self.size, self.every, self.seed = attack, size, every, int(seed)
        self.batch_size = batch_size
        self.index: torch.Tensor | None = None

    def setup(self, split) -> None:
        """Refuse inputs outside pixel space, resolve the attack's budget, fix the subset."""
        require_pixel_space(split, f"attack={self.attack.registry_name}")
        self.attack.setup(split)
        n = len(split.y_test)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        self.index = perm[: n if self.size is None else min(self.size, n)].sort().values

    def due(self, epoch: int, num_epochs: int) -> bool:
        """Whether epoch ``epoch`` (0-based) records the robust accuracy in metrics.jsonl."""
        return self.every > 0 and ((epoch + 1) % self.every == 0 or epoch + 1 == num_epochs)

    def accuracies(self, model: nn.Module, split, transform: BatchTransform,
                   loss: nn.Module | None = None) -> tuple[float, float]:
        """(clean accuracy, robust accuracy) on the subset; with the run's ``loss``, the predictor
        attacked and scored is its ``prediction_logits`` of the model's (a learned link)."""
        x_all, y_all = split.x_test, split.y_test
        index = self.index.to(y_all.device)
        pixel_model = PixelModel(model, transform, getattr(loss, "prediction_logits", None))
        device = y_all.device
        generator = torch.Generator(device=device).manual_seed(self.seed)
        clean = robust = 0
        with eval_mode(model):
            for i in range(0, len(index), self.batch_size):
                part = index[i: i + self.batch_size]
                x = transform.pixels(x_all[part], train=False)
                y = y_all[part]
                with torch.no_grad():
                    clean += int((pixel_model(x).argmax(1) == y).sum())
                x_adv = self.attack(pixel_model, x, y, generator)
                with torch.no_grad():
                    robust += int((pixel_model(x_adv).argmax(1) == y).sum())
        n = max(len(index), 1)
        return clean / n, robust / n

    def epoch_metrics(self, model: nn.Module, split, transform: BatchTransform,
                      loss: nn.Module | None = None) -> dict:
        _, robust = self.accuracies(model, split, transform, loss)
        return {"test_robust_acc": robust}

    def evaluate(self, model: nn.Module, split, transform: BatchTransform,
                 loss: nn.Module | None = None) -> dict:
        """The summary.json figures: robust and clean accuracy on the subset, the attack and its settings."""
        clean, robust = self.accuracies(model, split, transform, loss)
        return {
            "test_robust_acc": robust,
            "test_robust_subset_clean_acc": clean,
            "robust_eval_size": len(self.index),
            "robust_attack": self.attack.registry_name,
            "robust_attack_settings": self.attack.settings(),
        }


class NoRobustEvaluation(RobustEvaluation):
    """``attack=none``: no robust figure (and no attack) at all."""

    def __init__(self) -> None:
        self.every, self.index = 0, None

    def setup(self, split) -> None:
        """Nothing to check: no attack runs."""

    def due(self, epoch: int, num_epochs: int) -> bool:
        return False

    def evaluate(self, model: nn.Module, split, transform: BatchTransform,
                 loss: nn.Module | None = None) -> dict:
        return {}

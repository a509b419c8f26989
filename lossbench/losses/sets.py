"""Set-level losses: the loss scores sets of training samples, which its own sampler builds."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench.losses.base import Loss, register_loss

OKO_TARGETS = ("hard", "soft")


@register_loss("oko")
class OddKOut(Loss):
    """Odd-k-out learning (OKO): cross-entropy of the logits summed over a set of k + 2 samples.

    A set S holds two samples of a pair class c and one sample of each of k
    other classes (k + 1 distinct classes in all). With z(x) the model's logits
    and s = sum_{x in S} z(x), the set's loss is

        hard:  -log softmax(s)_c
        soft:  -sum_j t_j log softmax(s)_j,  t = (2 e_c + sum_{odd o} e_o) / (k + 2)

    (t is the mean one-hot label of the set's members). Inference is per
    example, softmax(z(x)). The sampler (``epoch_batches``) draws each set as
    the official code does: k + 1 distinct classes uniformly among the classes
    present in the (noisy) training labels, the first one the pair class, then
    samples uniformly within each class, without replacement inside the set.
    So OKO samples classes uniformly, whatever their frequency.

    Defaults: k = 1 and hard targets, as ``main.py`` of the official code
    (LukasMut/OKO) defaults and its MNIST scripts run; ``targets: soft`` is the
    soft loss. lossbench's epoch holds ``sets_per_epoch`` sets (default: the
    training-set size // (k + 2), so an epoch costs what one pass of the data
    costs); a batch holds trainer.batch_size // (k + 2) sets (at least one).
    The official code fixes the number of sets per epoch and per batch
    (``--num_sets``, ``--oko_batch_sizes``) instead.

    Lukas Muttenthaler, Robert A. Vandermeulen, Qiuyi Zhang, Thomas Unterthiner,
    Klaus-Robert Mueller 2024, "Set Learning for Accurate and Calibrated
    Models", ICLR.
    """

    family = "calibration"
    paper = "Muttenthaler et al. 2024"
    level = "set"

    def __init__(self, k: int = 1, targets: str = "hard", sets_per_epoch: int | None = None) -> None:
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"oko needs an integer number of odd classes k >= 1, got {k!r}")
        if targets not in OKO_TARGETS:
            raise ValueError(f"unknown oko targets '{targets}'; known: {', '.join(OKO_TARGETS)}")
        if sets_per_epoch is not None and (isinstance(sets_per_epoch, bool)
                                           or not isinstance(sets_per_epoch, int) or sets_per_epoch < 1):
            raise ValueError(f"oko needs sets_per_epoch >= 1 (or null), got {sets_per_epoch!r}")
        self.k, self.targets, self.sets_per_epoch = k, targets, sets_per_epoch

    @property
    def set_size(self) -> int:
        return self.k + 2

    def set_labels(self, target: Tensor) -> tuple[Tensor, Tensor]:
        """(counts [S, C'] of each class in each set, pair class [S]) for a batch of whole sets;
        a batch without that structure is refused in one line."""
        size = self.set_size
        if target.numel() % size:
            raise ValueError(f"oko scores sets of k + 2 = {size} samples; got a batch of {target.numel()}, "
                             f"not a whole number of sets (its batches come from its own sampler)")
        sets = target.view(-1, size)
        counts = F.one_hot(sets, int(target.max()) + 1).sum(1)
        shaped = (counts.max(1).values == 2) & ((counts > 0).sum(1) == self.k + 1)
        if not bool(shaped.all()):
            bad = sets[~shaped][0].tolist()
            raise ValueError(f"oko needs sets of k + 2 = {size} samples, two of one class and one of each of "
                             f"k = {self.k} others; got a set with labels {bad}")
        return counts, counts.argmax(1)

    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        counts, pair = self.set_labels(target)
        summed = logits.view(-1, self.set_size, logits.shape[1]).sum(1)
        logp = summed.log_softmax(dim=1)
        if self.targets == "hard":
            return -logp.gather(1, pair[:, None]).squeeze(1)
        soft = counts.to(logp.dtype) / self.set_size
        return -(soft * logp[:, : soft.shape[1]]).sum(1)

    def prepare(self, labels: Tensor, batch_size: int, device: torch.device) -> None:
        self._class_pools(labels)

    def _class_pools(self, labels: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(classes present, their counts, start offsets into ``by_class``, positions sorted by class)."""
        labels = labels.cpu()
        classes, counts = labels.unique(return_counts=True)
        if len(classes) < self.k + 1:
            raise ValueError(f"oko builds sets of k + 1 = {self.k + 1} distinct classes, and the training "
                             f"labels hold {len(classes)}; lower loss.k")
        few = classes[counts < 2]
        if len(few):
            raise ValueError(f"oko draws two samples of a class for every set, and class {int(few[0])} has "
                             f"{int(counts[classes == few[0]])} training sample (every class needs 2)")
        by_class = torch.argsort(labels, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        return classes, counts, starts, by_class

    def epoch_batches(self, labels: Tensor, batch_size: int, generator: torch.Generator) -> list[Tensor]:
        """One epoch of sets, ``batch_size // (k + 2)`` sets per batch (at least one).

        Each set: k + 1 distinct classes uniformly (a random permutation of the
        classes present, first k + 1 kept; the first is the pair class), two
        distinct samples of the pair class and one of each other class, uniform
        within the class. Laid out [pair, pair, odd_1, ..., odd_k].
        """
        classes, counts, starts, by_class = self._class_pools(labels)
        n_sets = self.sets_per_epoch or max(1, len(labels) // self.set_size)
        chosen = torch.rand(n_sets, len(classes), generator=generator).argsort(1)[:, : self.k + 1]
        n_c, start = counts[chosen], starts[chosen]
        u = torch.rand(n_sets, self.k + 2, generator=generator)
        first = (u[:, 0] * n_c[:, 0]).long().clamp(max=n_c[:, 0] - 1)
        second = (u[:, 1] * (n_c[:, 0] - 1)).long().clamp(max=n_c[:, 0] - 2)
        second = second + (second >= first).long()  # a second, distinct sample of the pair class
        odd = (u[:, 2:] * n_c[:, 1:]).long().minimum(n_c[:, 1:] - 1)
        rank = torch.cat([first[:, None], second[:, None], odd], 1)
        where = torch.cat([start[:, :1], start[:, :1], start[:, 1:]], 1) + rank
        positions = by_class[where].reshape(-1)
        per_batch = max(1, batch_size // self.set_size) * self.set_size
        return list(positions.split(per_batch))

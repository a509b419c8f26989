"""Synthetic class-conditional label noise: clean, symmetric, asymmetric, pair-flip, custom T, swap pairs."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from lossbench.noise.base import (
    NoiseModel,
    NoisyLabels,
    draw_categorical,
    realized_transition,
    register_noise,
    uniform,
)
from lossbench.noise.flip_maps import CIFAR100_GROUPINGS, MAPPED_DATASETS, SWAP_PAIRS, flip_map

COUNTS = ("binomial", "exact", "exact_per_target", "equal")
RNGS = ("torch", "numpy_legacy")


@register_noise("clean")
class Clean(NoiseModel):
    """No noise: the identity transition matrix."""

    kind = "clean"

    def __init__(self) -> None:
        super().__init__(0.0)

    def corrupt(self, y_clean, num_classes, features, generator) -> NoisyLabels:
        eye = np.eye(num_classes)
        return NoisyLabels(y_clean.clone(), torch.zeros(len(y_clean), dtype=torch.bool), eye, eye)


class ClassConditional(NoiseModel):
    """Noise that depends on the clean class only, drawn in two steps.

    A label of clean class c is *hit* with probability h[c]; a hit label is
    replaced by a draw from the row ``targets[c]``. So
    T = diag(1 - h) + diag(h) targets. Subclasses give ``hit_and_targets``.

    ``count="binomial"`` (default): each label is hit independently, so the
    number hit per class is binomial (the APL code's asymmetric MNIST noise).
    ``count="exact"``: in each clean class c, exactly floor(h[c] * n_c) labels,
    chosen uniformly, are hit (the APL code of Ma et al. 2020 for CIFAR-10's
    asymmetric noise); their targets are drawn from the row.
    ``count="exact_per_target"``: exactly floor(T[c, j] * n_c) labels of
    class c, chosen uniformly, go to each class j != c (the ANL code's
    ``create_noisy_labels``, Ye et al. 2023; with one target per class it is
    ``exact``). ``count="equal"``: the same number, floor(floor(h N) / C),
    in every class (N labels in all, C classes; needs one hit rate h for all
    classes): the APL code's symmetric noise, ``int(int(eta N) / C)`` per class
    (dataset.py). On balanced classes (CIFAR) it is ``exact``; on MNIST at
    eta 0.8 it flips 4,800 of each class, keeping 621 of the 5,421 fives
    (11.5%) and 1,942 of the 6,742 ones (28.8%) where ``exact`` keeps 20% of each.
    """

    one_rate = False  # True where every class is hit at the same rate (what count="equal" needs)

    def __init__(self, rate: float, count: str = "binomial") -> None:
        super().__init__(rate)
        if count not in COUNTS:
            raise ValueError(f"unknown noise count '{count}'; known: {', '.join(COUNTS)}")
        if count == "equal" and not self.one_rate:
            raise ValueError(
                f"noise count 'equal' flips the same number of labels in every class, which needs one "
                f"hit rate for all classes (symmetric noise), not {self.describe()}; use exact or binomial"
            )
        self.count = count

    def hit_and_targets(self, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """(h [C], targets [C, C]); each targets row is a distribution."""
        raise NotImplementedError

    def expected(self, num_classes: int) -> np.ndarray:
        h, targets = self.hit_and_targets(num_classes)
        return np.diag(1.0 - h) + h[:, None] * targets

    def corrupt(
        self, y_clean: Tensor, num_classes: int, features: Tensor | None, generator: torch.Generator
    ) -> NoisyLabels:
        h, targets = self.hit_and_targets(num_classes)
        n = len(y_clean)
        u_hit = uniform(generator, n)
        u_target = uniform(generator, n)
        h_t = torch.as_tensor(h, dtype=torch.float64)
        if self.count == "exact_per_target":
            return self._per_target(y_clean, num_classes, u_hit)
        if self.count == "binomial":
            hit = u_hit < h_t[y_clean]
        else:
            hit = torch.zeros(n, dtype=torch.bool)
            per_class = None
            if self.count == "equal":  # int(int(eta N) / C), as the APL code
                per_class = math.floor(float(h[0]) * n + 1e-9) // num_classes
            for c in range(num_classes):
                members = (y_clean == c).nonzero().squeeze(1)
                k = math.floor(h[c] * len(members) + 1e-9) if per_class is None else per_class
                if k > len(members):
                    raise ValueError(
                        f"noise count 'equal' flips {k} labels of each class, but class {c} has only "
                        f"{len(members)}: use count=exact"
                    )
                chosen = torch.argsort(u_hit[members], stable=True)[:k]
                hit[members[chosen]] = True
        drawn = draw_categorical(torch.as_tensor(targets)[y_clean], u_target)
        y_noisy = torch.where(hit, drawn, y_clean)
        return NoisyLabels(
            y_noisy,
            y_noisy != y_clean,
            self.expected(num_classes),
            realized_transition(y_clean, y_noisy, num_classes),
        )


    def _per_target(self, y_clean: Tensor, num_classes: int, u_hit: Tensor) -> NoisyLabels:
        """floor(T[c, j] n_c) labels of class c to each j != c: consecutive blocks of the class's
        members in the random order ``u_hit`` gives them."""
        t = self.expected(num_classes)
        y_noisy = y_clean.clone()
        for c in range(num_classes):
            members = (y_clean == c).nonzero().squeeze(1)
            order = members[torch.argsort(u_hit[members], stable=True)]
            start = 0
            for j in range(num_classes):
                k = 0 if j == c else math.floor(t[c, j] * len(members) + 1e-9)
                y_noisy[order[start : start + k]] = j
                start += k
        return NoisyLabels(y_noisy, y_noisy != y_clean, t, realized_transition(y_clean, y_noisy, num_classes))


@register_noise("symmetric")
class Symmetric(ClassConditional):
    """Symmetric (uniform) noise at rate eta.

    ``convention="flip"`` (default; the code of Ma et al. 2020, "Normalized Loss
    Functions for Deep Learning with Noisy Labels", ICML): each label is, with
    probability eta, replaced by a uniformly chosen *other* class, so
    T = (1 - eta) I + eta / (C - 1) (1 - I). Needs eta < (C - 1) / C, else the
    true class is no more likely than another.
    ``convention="uniform"`` (the LDR code of Zhu et al. 2023): with probability
    eta the label is redrawn from all C classes (it may keep the true one), so
    T = (1 - eta) I + eta / C 1 and the realized flip rate is eta (C - 1) / C.

    ``rng`` chooses the random stream: ``torch`` (default: lossbench's CPU
    generator seeded with the run's ``noise_seed``, one uniform for the hit and
    one for the target) or ``numpy_legacy``: the draw of the [Re] code of Menon
    et al. 2020 (Mizrahi et al. 2021, dmizr/phuber ``NoisyMNIST``), which calls
    ``numpy.random.seed(noise_seed)`` and then ``numpy.random.choice(C, p=row)``
    label by label, row = (1 - eta) at the label, eta / (C - 1) elsewhere: one
    uniform of numpy's legacy Mersenne Twister per label, inverted through the
    row's cumulative sum. The same distribution (flip convention, binomial
    count), and with the same ``noise_seed`` the same noisy labels as that code.
    """

    kind = "symmetric"
    one_rate = True

    def __init__(self, rate: float, convention: str = "flip", count: str = "binomial",
                 rng: str = "torch") -> None:
        super().__init__(rate, count)
        if convention not in ("flip", "uniform"):
            raise ValueError(f"symmetric noise convention must be 'flip' or 'uniform', got {convention!r}")
        if rng not in RNGS:
            raise ValueError(f"unknown noise rng '{rng}'; known: {', '.join(RNGS)}")
        if rng == "numpy_legacy" and (convention, count) != ("flip", "binomial"):
            raise ValueError("noise rng numpy_legacy draws the [Re] code's labels: it needs convention flip "
                             f"and count binomial, got convention {convention} and count {count}")
        self.convention = convention
        self.rng = rng

    def corrupt(self, y_clean: Tensor, num_classes: int, features: Tensor | None,
                generator: torch.Generator) -> NoisyLabels:
        if self.rng == "torch":
            return super().corrupt(y_clean, num_classes, features, generator)
        seed = generator.initial_seed()
        if not 0 <= seed < 2**32:
            raise ValueError(f"noise rng numpy_legacy needs noise_seed in [0, 2^32), as numpy.random.seed; "
                             f"got {seed}")
        c = num_classes
        rows = np.full((c, c), self.rate / (c - 1))  # the code's row: rho / (C - 1) off the label
        np.fill_diagonal(rows, 1.0 - self.rate)
        u = torch.from_numpy(np.random.RandomState(seed).random_sample(len(y_clean)))
        y_noisy = draw_categorical(torch.from_numpy(rows)[y_clean], u)
        return NoisyLabels(y_noisy, y_noisy != y_clean, self.expected(c),
                           realized_transition(y_clean, y_noisy, c))

    def check(self, num_classes: int, dataset: str) -> None:
        super().check(num_classes, dataset)
        if self.convention == "flip" and self.rate >= (num_classes - 1) / num_classes:
            raise ValueError(
                f"symmetric flip noise at rate {self.rate} with {num_classes} classes leaves the "
                f"true class no more likely than any other; use a rate below "
                f"{(num_classes - 1) / num_classes:.3f}"
            )

    def hit_and_targets(self, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
        c = num_classes
        h = np.full(c, self.rate)
        if self.convention == "flip":
            return h, (1.0 - np.eye(c)) / (c - 1)
        return h, np.full((c, c), 1.0 / c)


class _BelowHalf(ClassConditional):
    """A class-conditional model that moves a hit label to one other class."""

    def __init__(self, rate: float, count: str = "binomial") -> None:
        super().__init__(rate, count)
        if self.rate >= 0.5:
            raise ValueError(
                f"{self.describe()} sends a flipped class to one target at least as often as it "
                f"keeps it, so the clean class is no longer the most likely label; use a rate below 0.5"
            )


@register_noise("asymmetric")
class Asymmetric(_BelowHalf):
    """Class-dependent flips of the literature: class s -> map[s] with probability eta.

    The maps (lossbench/noise/flip_maps.py; Patrini et al. 2017, "Making Deep
    Neural Networks Robust to Label Noise: a Loss Correction Approach", CVPR):
    MNIST and digits 2->7, 3->8, 5<->6, 7->1; CIFAR-10 truck->automobile,
    bird->airplane, deer->horse, cat<->dog; CIFAR-100 each class to the next of
    its super-class, circularly (``grouping="blocks"``: blocks of five
    consecutive indices, the APL code's convention); Fashion-MNIST a map of its
    confusable pairs. Classes not in the map keep their labels.
    ``flip_map="auto"`` takes the map of the run's dataset; naming a dataset
    uses its map on any dataset with as many classes. Flips are drawn at once
    from the clean label (the APL code applies CIFAR-10's flips one after
    another, so a cat flipped to dog can be flipped back; here it cannot).
    Needs eta < 0.5.
    """

    kind = "asymmetric"

    def __init__(
        self, rate: float, flip_map: str = "auto", grouping: str = "superclass", count: str = "binomial"
    ) -> None:
        super().__init__(rate, count)
        if grouping not in CIFAR100_GROUPINGS:
            raise ValueError(
                f"unknown CIFAR-100 grouping '{grouping}'; known: {', '.join(CIFAR100_GROUPINGS)}"
            )
        if flip_map != "auto" and flip_map not in MAPPED_DATASETS:
            raise ValueError(
                f"unknown flip map '{flip_map}'; known: auto, {', '.join(MAPPED_DATASETS)}"
            )
        self.flip_map = flip_map
        self.grouping = grouping
        self.dataset: str | None = None if flip_map == "auto" else flip_map

    def check(self, num_classes: int, dataset: str) -> None:
        super().check(num_classes, dataset)
        name = dataset if self.flip_map == "auto" else self.flip_map
        if name not in MAPPED_DATASETS:
            raise ValueError(
                f"{self.describe()} has no flip map for dataset '{dataset}'; datasets with maps: "
                f"{', '.join(MAPPED_DATASETS)} (set noise.flip_map to one of them to use its map)"
            )
        _, classes = flip_map(name, self.grouping)
        if classes != num_classes:
            raise ValueError(
                f"the {name} flip map of {self.describe()} is for {classes} classes, "
                f"but dataset '{dataset}' has {num_classes}"
            )
        self.dataset = name

    def mapping(self) -> dict[int, int]:
        """source -> target of the resolved map (after ``check`` when ``flip_map="auto"``)."""
        if self.dataset is None:
            raise ValueError(
                "asymmetric noise with flip_map='auto' needs check(num_classes, dataset) "
                "first, or a named flip_map"
            )
        return flip_map(self.dataset, self.grouping)[0]

    def hit_and_targets(self, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
        mapping = self.mapping()
        h, targets = np.zeros(num_classes), np.eye(num_classes)
        for source, target in mapping.items():
            h[source] = self.rate
            targets[source] = np.eye(num_classes)[target]
        return h, targets


@register_noise("pair")
class PairFlip(_BelowHalf):
    """Pair flip: class i -> (i + 1) mod C with probability eta, T = (1 - eta) I + eta P.

    Han et al. 2018, "Co-teaching: Robust Training of Deep Neural Networks with
    Extremely Noisy Labels", NeurIPS. Needs eta < 0.5 (pair45 is the hardest
    setting of the paper).
    """

    kind = "pair"

    def hit_and_targets(self, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
        return np.full(num_classes, self.rate), np.roll(np.eye(num_classes), 1, axis=1)


@register_noise("custom")
class Custom(ClassConditional):
    """Any transition matrix T given in the config: the noisy label of class i ~ T[i].

    Rows must be non-negative and sum to 1 (within 1e-6); the shape must match
    the dataset's number of classes. ``rate`` is the mean off-diagonal mass,
    1 - mean_i T[i, i] (the flip rate under balanced classes).
    """

    kind = "custom"

    def __init__(self, matrix: list[list[float]], count: str = "binomial") -> None:
        try:
            t = np.array(matrix, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"noise.matrix must be a square list of lists of numbers: {exc}") from None
        if t.ndim != 2 or t.shape[0] != t.shape[1] or t.shape[0] < 2:
            raise ValueError(f"noise.matrix must be a square C x C matrix with C >= 2, got shape {t.shape}")
        if not np.isfinite(t).all() or (t < 0).any():
            i, j = np.argwhere(~(np.isfinite(t) & (t >= 0)))[0]
            raise ValueError(f"noise.matrix entries are probabilities; row {i}, column {j} is {t[i, j]}")
        sums = t.sum(1)
        bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
        if len(bad):
            raise ValueError(
                f"each row of noise.matrix is P(noisy | clean) and must sum to 1 (within 1e-6); "
                f"row {bad[0]} sums to {sums[bad[0]]:.6g}"
            )
        super().__init__(0.0, count)
        self.matrix = t
        self.rate = 1.0 - float(np.diag(t).mean())

    def check(self, num_classes: int, dataset: str) -> None:
        super().check(num_classes, dataset)
        if self.matrix.shape[0] != num_classes:
            raise ValueError(
                f"noise.matrix is {self.matrix.shape[0]} x {self.matrix.shape[0]}, "
                f"but dataset '{dataset}' has {num_classes} classes"
            )

    def expected(self, num_classes: int) -> np.ndarray:
        return self.matrix.copy()

    def hit_and_targets(self, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
        t = self.matrix
        off = t * (1.0 - np.eye(len(t)))
        h = off.sum(1)
        targets = np.eye(len(t))
        rows = h > 0
        targets[rows] = off[rows] / off[rows].sum(1, keepdims=True)
        return h, targets


@register_noise("swap")
class Swap(ClassConditional):
    """Class-dependent noise of the LDR code: fixed pairs of classes swap labels.

    Each label of a class in a pair (a, b) becomes the other class with probability eta (drawn
    label by label, as ``checks[i] < noise_level`` in the code); a class in no pair keeps its
    label. So T = (1 - eta) I + eta P on the paired classes, P the swap. ``pairs``: ``auto`` takes
    the dataset's map (``letter``, ``vowel``: lossbench/noise/flip_maps.py SWAP_PAIRS, the code's
    classDep_letter and classDep_vowel), or a list of [a, b] pairs of class names (or indices).
    eta up to 0.5, the code's highest setting (there a paired class and its partner are equally
    likely labels). The code marks a hit label of an unpaired class as noisy though it keeps its
    class; lossbench counts only changed labels, so its realized rate is lower on such datasets.

    Zhu, Ying, Yang 2023, "Label Distributionally Robust Losses for Multi-class Classification:
    Consistency, Robustness and Adaptivity", ICML (Optimization-AI/ICML2023_LDR utils.py).
    """

    kind = "swap"

    def __init__(self, rate: float, pairs: str | list = "auto", count: str = "binomial") -> None:
        super().__init__(rate, count)
        if self.rate > 0.5:
            raise ValueError(f"{self.describe()} sends a paired class to its partner more often than it "
                             f"keeps it; use a rate of at most 0.5")
        if isinstance(pairs, str):
            if pairs != "auto" and pairs not in SWAP_PAIRS:
                raise ValueError(f"unknown swap map '{pairs}'; known: auto, {', '.join(SWAP_PAIRS)}, or a "
                                 "list of [a, b] class pairs")
            self.pairs: str | list[tuple] = pairs
        else:
            listed = [tuple(p) for p in pairs]
            if not listed or any(len(p) != 2 or p[0] == p[1] for p in listed):
                raise ValueError(f"noise.pairs must be a list of [a, b] pairs of two different classes, "
                                 f"got {pairs}")
            flat = [c for p in listed for c in p]
            if len(set(map(str, flat))) != len(flat):
                raise ValueError(f"a class may be in one swap pair only, got {pairs}")
            self.pairs = listed
        self.mapping_: dict[int, int] | None = None

    def check(self, num_classes: int, dataset: str) -> None:
        super().check(num_classes, dataset)
        pairs = self.pairs
        if pairs == "auto":
            if dataset not in SWAP_PAIRS:
                raise ValueError(f"{self.describe()} has no swap map for dataset '{dataset}'; datasets with "
                                 f"maps: {', '.join(SWAP_PAIRS)} (or give noise.pairs=[[a,b],...])")
            pairs = SWAP_PAIRS[dataset]
        elif isinstance(pairs, str):
            pairs = SWAP_PAIRS[pairs]
        names = self.class_names or [str(c) for c in range(num_classes)]
        if len(names) != num_classes:
            raise ValueError(f"{self.describe()}: {len(names)} class names for {num_classes} classes")
        mapping: dict[int, int] = {}
        for a, b in pairs:
            ends = []
            for c in (a, b):
                if str(c) in names:
                    ends.append(names.index(str(c)))
                elif isinstance(c, int) and not isinstance(c, bool) and 0 <= c < num_classes:
                    ends.append(c)
                else:
                    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
                    raise ValueError(f"swap pair [{a}, {b}]: dataset '{dataset}' has no class {c!r} "
                                     f"(classes: {shown})")
            mapping[ends[0]], mapping[ends[1]] = ends[1], ends[0]
        self.mapping_ = mapping

    def hit_and_targets(self, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
        if self.mapping_ is None:  # called without check (a bare model): the map must name indices
            self.check(num_classes, "?")
        h, targets = np.zeros(num_classes), np.eye(num_classes)
        for source, target in self.mapping_.items():
            h[source] = self.rate
            targets[source] = np.eye(num_classes)[target]
        return h, targets

"""Class flip maps of asymmetric label noise, per dataset, and CIFAR-100's super-classes."""

from __future__ import annotations

# MNIST (and the 8x8 digits): 2 -> 7, 3 -> 8, 5 <-> 6, 7 -> 1. Patrini et al. 2017,
# "Making Deep Neural Networks Robust to Label Noise: a Loss Correction
# Approach" (CVPR); reused by Wang et al. 2019 (SCE) and Ma et al. 2020 (APL).
DIGITS_MAP: dict[int, int] = {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}

# CIFAR-10: truck(9) -> automobile(1), bird(2) -> airplane(0), deer(4) -> horse(7),
# cat(3) <-> dog(5). Patrini et al. 2017; reused by SCE and APL.
CIFAR10_MAP: dict[int, int] = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}

# Fashion-MNIST: no map is shared across the noisy-label literature, so this one
# is lossbench's choice, made like the MNIST and CIFAR-10 maps (five source
# classes, each to the class it is most easily mistaken for): T-shirt/top(0) <->
# Shirt(6), Pullover(2) -> Coat(4), Sandal(5) -> Sneaker(7), Ankle boot(9) ->
# Sneaker(7). These are the pairs classifiers confuse most on Fashion-MNIST
# (Xiao, Rasul, Vollgraf 2017, "Fashion-MNIST", arXiv:1708.07747).
FASHION_MNIST_MAP: dict[int, int] = {0: 6, 6: 0, 2: 4, 5: 7, 9: 7}

# CIFAR-100 fine label -> coarse (super-class) label, from the dataset's own
# metadata (the "coarse_labels" of cifar-100-python/train, checked in the tests
# against CIFAR-100N's clean_coarse_label). Index i is fine class i.
CIFAR100_COARSE: tuple[int, ...] = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3,
    3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15,
    0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10,
    16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19,
    2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19,
    18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
)

CIFAR100_GROUPINGS = ("superclass", "blocks")

# Class-dependent noise of the LDR code (Zhu, Ying, Yang 2023; Optimization-AI/ICML2023_LDR utils.py):
# fixed pairs of classes that swap labels, by class name. letter (classDep_letter): its indices 1<->3,
# 2<->6, 4<->5, 7<->13, 8<->11, 10<->23, 12<->22, 14<->16, 15<->17, 20<->21 in the order A..Z (checked: the
# repository's data/letter_test.npz rows, matched to the UCI file, have class k = the k-th letter).
# vowel (classDep_vowel): 0<->1, 2<->3, 4<->5, 6<->7, 8<->9 in the UCI order hid hId hEd hAd hYd had hOd
# hod hUd hud hed (hed, class 10, keeps its label). The code's news20 map is by index only (no names here).
SWAP_PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "letter": (("B", "D"), ("C", "G"), ("E", "F"), ("H", "N"), ("I", "L"), ("K", "X"), ("M", "W"),
               ("O", "Q"), ("P", "R"), ("U", "V")),
    "vowel": (("hid", "hId"), ("hEd", "hAd"), ("hYd", "had"), ("hOd", "hod"), ("hUd", "hud")),
}


def cifar100_map(grouping: str = "superclass") -> dict[int, int]:
    """Each CIFAR-100 class to the next one of its group, circularly (Patrini et al. 2017).

    ``superclass``: the group is the class's true super-class (20 groups of 5,
    members in increasing fine index). ``blocks``: the group is a block of five
    consecutive indices, 5k..5k+4 (the convention of the APL and ANL code; the
    indices are alphabetical, so these blocks are not semantic super-classes).
    """
    if grouping == "superclass":
        groups = [[f for f in range(100) if CIFAR100_COARSE[f] == c] for c in range(20)]
    elif grouping == "blocks":
        groups = [list(range(5 * k, 5 * k + 5)) for k in range(20)]
    else:
        raise ValueError(
            f"unknown CIFAR-100 grouping '{grouping}'; known: {', '.join(CIFAR100_GROUPINGS)}"
        )
    return {g[i]: g[(i + 1) % len(g)] for g in groups for i in range(len(g))}


def flip_map(dataset: str, grouping: str = "superclass") -> tuple[dict[int, int], int]:
    """(source -> target map, number of classes) of the named dataset's asymmetric noise."""
    if dataset == "cifar100":
        return cifar100_map(grouping), 100
    if dataset not in _MAPS:
        raise KeyError(dataset)
    return dict(_MAPS[dataset]), 10


_MAPS: dict[str, dict[int, int]] = {
    "digits": DIGITS_MAP,
    "mnist": DIGITS_MAP,
    "cifar10": CIFAR10_MAP,
    "fashion_mnist": FASHION_MNIST_MAP,
}

MAPPED_DATASETS: tuple[str, ...] = tuple(sorted([*_MAPS, "cifar100"]))

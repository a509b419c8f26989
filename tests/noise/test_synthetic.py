"""Class-conditional synthetic noise: rates, transition matrices, maps, checks, pinned draws."""

import math

import numpy as np
import pytest
import torch

from lossbench.noise.base import expected_noise_rate
from lossbench.noise.flip_maps import CIFAR100_COARSE, flip_map
from lossbench.noise.synthetic import Asymmetric, Clean, Custom, PairFlip, Swap, Symmetric

N = 20_000
CUSTOM_T = [[0.7, 0.2, 0.1], [0.0, 1.0, 0.0], [0.25, 0.25, 0.5]]


def asym(rate, dataset, **kw):
    model = Asymmetric(rate, **kw)
    model.check(100 if dataset == "cifar100" else 10, dataset)
    return model


LETTERS = [chr(ord("A") + k) for k in range(26)]
VOWELS = ["hid", "hId", "hEd", "hAd", "hYd", "had", "hOd", "hod", "hUd", "hud", "hed"]  # the UCI order


def swap(rate, dataset, **kw):
    model = Swap(rate, **kw)
    names = LETTERS if dataset == "letter" else VOWELS
    model.set_class_names(names)
    model.check(len(names), dataset)
    return model


# id -> (model factory, number of classes)
CASES = {
    "sym60_flip": (lambda: Symmetric(0.6), 10),
    "sym60_uniform": (lambda: Symmetric(0.6, convention="uniform"), 10),
    "sym40_flip_c100": (lambda: Symmetric(0.4), 100),
    "asym40_cifar10": (lambda: asym(0.4, "cifar10"), 10),
    "asym40_mnist": (lambda: asym(0.4, "mnist"), 10),
    "asym30_fashion": (lambda: asym(0.3, "fashion_mnist"), 10),
    "asym40_cifar100": (lambda: asym(0.4, "cifar100"), 100),
    "asym40_cifar100_blocks": (lambda: asym(0.4, "cifar100", grouping="blocks"), 100),
    "pair45": (lambda: PairFlip(0.45), 10),
    "custom": (lambda: Custom(CUSTOM_T), 3),
    "swap30_letter": (lambda: swap(0.3, "letter"), 26),
    "swap50_vowel": (lambda: swap(0.5, "vowel"), 11),
}


@pytest.fixture(params=sorted(CASES))
def drawn(request, nt, gen):
    make, c = CASES[request.param]
    y = nt.shuffled_labels(N, c)
    return make(), y, c, make()(y, c, None, gen(11))


def test_expected_T_is_row_stochastic(drawn):
    _, _, c, noisy = drawn
    assert noisy.expected_T.shape == (c, c)
    assert (noisy.expected_T >= 0).all()
    assert np.allclose(noisy.expected_T.sum(1), 1.0, atol=1e-12)


def test_realized_rate_is_within_sampling_error(drawn, nt):
    _, y, _, noisy = drawn
    p = expected_noise_rate(noisy.expected_T, y)
    assert nt.within_binomial(noisy.rate, p, len(y)), (noisy.rate, p)


def test_realized_T_matches_expected(drawn, nt):
    _, y, _, noisy = drawn
    nt.assert_T_close(noisy.realized_T, noisy.expected_T, y)
    assert (noisy.realized_T[noisy.expected_T == 0] == 0).all()


def test_is_noisy_marks_changed_labels(drawn):
    _, y, _, noisy = drawn
    assert torch.equal(noisy.is_noisy, noisy.y_noisy != y)
    assert noisy.y_noisy.dtype == torch.long and noisy.y_noisy.shape == y.shape


def test_same_seed_same_labels_other_seed_other_labels(drawn, gen):
    model, y, c, noisy = drawn
    assert torch.equal(model(y, c, None, gen(11)).y_noisy, noisy.y_noisy)
    assert not torch.equal(model(y, c, None, gen(12)).y_noisy, noisy.y_noisy)


def test_asked_rates():
    assert Symmetric(0.6).expected(10)[0, 0] == pytest.approx(0.4)
    assert Symmetric(0.6, convention="uniform").expected(10)[0, 0] == pytest.approx(0.46)
    assert Symmetric(0.6).expected(10)[0, 1] == pytest.approx(0.6 / 9)
    assert Custom(CUSTOM_T).rate == pytest.approx(1 - (0.7 + 1 + 0.5) / 3)


def test_clean_changes_nothing(nt):
    y = nt.shuffled_labels(100, 10)
    noisy = Clean()(y, 10)
    assert torch.equal(noisy.y_noisy, y) and noisy.rate == 0
    assert np.array_equal(noisy.expected_T, np.eye(10))


def test_uniform_convention_realized_rate_is_rate_times_c_minus_1_over_c(gen, nt):
    y = nt.shuffled_labels(N, 10)
    noisy = Symmetric(0.5, convention="uniform")(y, 10, None, gen())
    assert nt.within_binomial(noisy.rate, 0.5 * 9 / 10, N)


@pytest.mark.parametrize("dataset", ["digits", "mnist", "cifar10", "fashion_mnist", "cifar100"])
def test_asymmetric_flips_only_the_listed_classes_to_their_targets(dataset, gen, nt):
    c = 100 if dataset == "cifar100" else 10
    mapping, _ = flip_map(dataset)
    y = nt.shuffled_labels(N, c)
    noisy = asym(0.4, dataset)(y, c, None, gen())
    changed = noisy.is_noisy
    assert set(y[changed].unique().tolist()) == set(mapping)
    expected_targets = torch.tensor([mapping.get(i, i) for i in range(c)])
    assert torch.equal(noisy.y_noisy[changed], expected_targets[y[changed]])
    assert torch.equal(noisy.y_noisy[~changed], y[~changed])


def test_literature_maps():
    assert flip_map("mnist")[0] == {2: 7, 3: 8, 5: 6, 6: 5, 7: 1} == flip_map("digits")[0]
    assert flip_map("cifar10")[0] == {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}
    fashion = flip_map("fashion_mnist")[0]
    assert fashion[0] == 6 and fashion[2] == 4 and fashion[5] == 7


def test_cifar100_superclass_map_cycles_within_super_classes():
    mapping, c = flip_map("cifar100", "superclass")
    assert c == 100 and sorted(mapping) == sorted(mapping.values()) == list(range(100))
    for source, target in mapping.items():
        assert source != target and CIFAR100_COARSE[source] == CIFAR100_COARSE[target]
    # apple (0) is in fruit and vegetables (coarse 0) with mushroom 51, orange 53, pear 57, sweet pepper 83
    assert [mapping[0], mapping[51], mapping[53], mapping[57], mapping[83]] == [51, 53, 57, 83, 0]


def test_cifar100_blocks_map_is_the_apl_convention():
    mapping, _ = flip_map("cifar100", "blocks")
    assert mapping[0] == 1 and mapping[4] == 0 and mapping[97] == 98 and mapping[99] == 95


def test_pair_flip_moves_to_the_next_class(gen, nt):
    y = nt.shuffled_labels(N, 10)
    noisy = PairFlip(0.45)(y, 10, None, gen())
    assert torch.equal(noisy.y_noisy[noisy.is_noisy], (y[noisy.is_noisy] + 1) % 10)
    assert noisy.expected_T[9, 0] == pytest.approx(0.45)


@pytest.mark.parametrize(
    "model",
    [Symmetric(0.4, count="exact"), PairFlip(0.3, count="exact"), Custom(CUSTOM_T, count="exact")],
    ids=["sym", "pair", "custom"],
)
def test_exact_count_hits_floor_rate_n_per_class(model, gen, nt):
    c = len(CUSTOM_T) if isinstance(model, Custom) else 10
    y = nt.shuffled_labels(N + 7, c)
    noisy = model(y, c, None, gen())
    for k in range(c):
        members = y == k
        want = math.floor((1 - noisy.expected_T[k, k]) * int(members.sum()) + 1e-9)
        assert int(noisy.is_noisy[members].sum()) == want


def test_exact_per_target_moves_int_t_n_labels_to_each_class(gen):
    """The ANL code's create_noisy_labels (Virusdoll/Active-Negative-Loss dataset.py): int(T[c, j] n_c)
    labels of class c go to each j != c. CIFAR-10-sized classes of 5,000 at sym 0.4: 222 to each of the
    9 others (1,998 per class, not 2,000), and asym 0.4: exactly 2,000 cats to dog (realized 0.400)."""
    y = torch.arange(50_000) % 10
    noisy = Symmetric(0.4, count="exact_per_target")(y, 10, None, gen())
    counts = torch.zeros(10, 10, dtype=torch.long)
    counts.index_put_((y, noisy.y_noisy), torch.tensor(1), accumulate=True)
    off = ~torch.eye(10, dtype=torch.bool)
    assert (counts[off] == int(0.4 / 9 * 5000)).all() and (counts.diagonal() == 5000 - 9 * 222).all()
    asym40 = asym(0.4, "cifar10", count="exact_per_target")(y, 10, None, gen())
    cats = y == 3
    assert int((asym40.y_noisy[cats] == 5).sum()) == 2000 and asym40.realized_T[3, 5] == pytest.approx(0.4)
    assert torch.equal(asym40.is_noisy, asym(0.4, "cifar10", count="exact")(y, 10, None, gen()).is_noisy)


def test_exact_count_asymmetric():
    y = torch.arange(1000) % 10
    noisy = asym(0.3, "cifar10", count="exact")(y, 10)
    assert int(noisy.is_noisy.sum()) == 5 * 30


def test_equal_count_flips_the_same_number_in_every_class(gen):
    # classes of 40, 100 and 60 labels at eta 0.3: int(int(0.3 * 200) / 3) = 20 of each (exact: 12, 30, 18)
    y = torch.repeat_interleave(torch.arange(3), torch.tensor([40, 100, 60]))
    y = y[torch.randperm(len(y), generator=gen())]
    model = Symmetric(0.3, count="equal")
    model.check(3, "custom")
    noisy = model(y, 3, None, gen())
    assert [int(noisy.is_noisy[y == c].sum()) for c in range(3)] == [20, 20, 20]
    assert torch.all(noisy.y_noisy[noisy.is_noisy] != y[noisy.is_noisy])


MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_equal_count_keeps_what_the_apl_code_keeps_on_mnist(gen):
    # HanxunH/Active-Passive-Losses dataset.py MNISTNoisy at nosiy_rate 0.8 flips int(int(0.8 * 60000) / 10)
    # = 4800 labels of each class; the labels it keeps (measured by running that code) are n_c - 4800.
    y = torch.repeat_interleave(torch.arange(10), torch.tensor(MNIST_TRAIN_COUNTS))
    noisy = Symmetric(0.8, count="equal")(y, 10, None, gen())
    kept = [int((~noisy.is_noisy[y == c]).sum()) for c in range(10)]
    assert kept == [1123, 1942, 1158, 1331, 1042, 621, 1118, 1465, 1051, 1149]
    assert float(noisy.is_noisy.float().mean()) == pytest.approx(0.8)


def test_equal_count_is_exact_on_balanced_classes(gen):
    y = torch.arange(1000) % 10
    equal, exact = (Symmetric(0.4, count=c)(y, 10, None, gen()) for c in ("equal", "exact"))
    assert torch.equal(equal.y_noisy, exact.y_noisy)


def test_equal_count_needs_one_rate_and_enough_labels(gen):
    for make in (lambda: Asymmetric(0.3, count="equal"), lambda: PairFlip(0.3, count="equal")):
        with pytest.raises(ValueError, match="needs one hit rate for all classes"):
            make()
    y = torch.tensor([0] * 10 + [1] * 90)  # int(int(0.6 * 100) / 2) = 30 > 10 labels of class 0
    with pytest.raises(ValueError, match="flips 30 labels of each class, but class 0 has only 10"):
        Symmetric(0.6, count="equal", convention="uniform")(y, 2, None, gen())


# Pinned draws: labels must not change across machines or refactors (noise_seed 2026,
# 20,000 shuffled balanced labels). A change here changes every published noisy label set.
PINNED = {
    "sym60_flip": "46f1f54e3b798fe0",
    "sym60_uniform": "234c14e1e1691071",
    "asym40_cifar10": "7bbce9c322aaf4e7",
    "asym40_cifar100": "f74ed3da763a485a",
    "pair45": "cfa7e1954c4c7d17",
    "custom": "5121cdc932c96c17",
    "swap30_letter": "1105e579aca4ee71",
}


@pytest.mark.parametrize("case", sorted(PINNED))
def test_pinned_noisy_labels(case, gen, nt):
    make, c = CASES[case]
    y = nt.shuffled_labels(N, c)
    assert nt.label_hash(make()(y, c, None, gen(2026)).y_noisy) == PINNED[case]


# ---- refusals -----------------------------------------------------------------------------


def test_symmetric_flip_rate_at_c_minus_1_over_c_is_refused():
    Symmetric(0.85).check(10, "digits")
    with pytest.raises(ValueError, match=r"no more likely than any other; use a rate below 0\.900"):
        Symmetric(0.9).check(10, "digits")
    with pytest.raises(ValueError, match="below 0.500"):
        Symmetric(0.5).check(2, "synthetic")
    Symmetric(0.95, convention="uniform").check(10, "digits")


@pytest.mark.parametrize("make", [lambda: Asymmetric(0.5), lambda: PairFlip(0.6)], ids=["asym", "pair"])
def test_one_target_flips_at_half_or_more_are_refused(make):
    with pytest.raises(ValueError, match="no longer the most likely label; use a rate below 0.5"):
        make()


def test_asymmetric_on_a_dataset_without_map_is_an_error():
    with pytest.raises(
        ValueError,
        match=r"no flip map for dataset 'svhn'; datasets with maps: cifar10, cifar100, digits, fashion_mnist",
    ):
        Asymmetric(0.4).check(10, "svhn")


def test_asymmetric_named_map_on_another_dataset():
    model = Asymmetric(0.4, flip_map="mnist")
    model.check(10, "svhn")
    assert model.mapping() == flip_map("mnist")[0]
    with pytest.raises(ValueError, match="for 100 classes, but dataset 'svhn' has 10"):
        Asymmetric(0.4, flip_map="cifar100").check(10, "svhn")


def test_asymmetric_auto_needs_check():
    with pytest.raises(ValueError, match="needs check"):
        Asymmetric(0.4)(torch.zeros(3, dtype=torch.long), 10)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Asymmetric(0.4, grouping="alphabet"), "unknown CIFAR-100 grouping 'alphabet'; known"),
        (lambda: Asymmetric(0.4, flip_map="svhn"), "unknown flip map 'svhn'; known: auto, cifar10"),
        (lambda: Symmetric(0.4, convention="other"), "must be 'flip' or 'uniform'"),
        (lambda: Symmetric(0.4, count="some"),
         "unknown noise count 'some'; known: binomial, exact, exact_per_target, equal"),
        (lambda: Custom([[0.5, 0.4], [0.3, 0.7]]), r"must sum to 1 \(within 1e-6\); row 0 sums to 0.9"),
        (lambda: Custom([[1.2, -0.2], [0.3, 0.7]]), "row 0, column 1 is -0.2"),
        (lambda: Custom([[0.5, 0.5, 0.0], [0.3, 0.7, 0.0]]), r"square C x C matrix .* shape \(2, 3\)"),
        (lambda: Custom([[float("nan"), 1.0], [0.3, 0.7]]), "row 0, column 0 is nan"),
        (lambda: Custom([[1.0]]), "C >= 2"),
        (lambda: Custom([[0.5, 0.5], [0.3]]), "square"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_custom_rows_within_1e6_are_accepted_and_shape_is_checked():
    model = Custom([[0.5, 0.5 + 5e-7], [0.3, 0.7]])
    model.check(2, "synthetic")
    with pytest.raises(ValueError, match="noise.matrix is 2 x 2, but dataset 'digits' has 10 classes"):
        model.check(10, "digits")


def test_custom_permutation_matrix_flips_everything(nt):
    y = nt.shuffled_labels(100, 2)
    noisy = Custom([[0, 1], [1, 0]])(y, 2)
    assert torch.equal(noisy.y_noisy, 1 - y)


@pytest.mark.parametrize("rate, seed", [(0.2, 0), (0.6, 0), (0.4, 123)])
def test_numpy_legacy_draws_the_labels_of_numpy_random_choice_label_by_label(rate, seed):
    """The [Re] code of Menon et al. 2020 (NoisyMNIST): numpy.random.seed(noise_seed), then for each label
    numpy.random.choice(C, p=row), row = 1 - rate at the label and rate / (C - 1) elsewhere."""
    y = torch.from_numpy(np.random.RandomState(5).randint(0, 10, 2000))
    np.random.seed(seed)
    rows = np.full((len(y), 10), rate / 9)
    rows[np.arange(len(y)), y.numpy()] = 1 - rate
    expected = np.array([np.random.choice(10, p=rows[i]) for i in range(len(y))])
    drawn = Symmetric(rate, rng="numpy_legacy")(y, 10, None, torch.Generator().manual_seed(seed))
    assert np.array_equal(drawn.y_noisy.numpy(), expected)
    assert torch.equal(drawn.is_noisy, drawn.y_noisy != y)
    np.testing.assert_allclose(drawn.expected_T, Symmetric(rate).expected(10))


@pytest.mark.parametrize("kwargs, words", [
    ({"rng": "mt"}, "unknown noise rng 'mt'; known: torch, numpy_legacy"),
    ({"rng": "numpy_legacy", "count": "exact"}, "needs convention flip and count binomial"),
    ({"rng": "numpy_legacy", "convention": "uniform"}, "needs convention flip and count binomial"),
])
def test_numpy_legacy_refuses_what_the_code_does_not_draw(kwargs, words):
    with pytest.raises(ValueError, match=words):
        Symmetric(0.4, **kwargs)
    with pytest.raises(ValueError, match=r"noise_seed in \[0, 2\^32\)"):
        Symmetric(0.4, rng="numpy_legacy")(torch.zeros(4, dtype=torch.long), 10, None,
                                           torch.Generator().manual_seed(2**33))


# ---- the LDR code's class-dependent swaps ---------------------------------------------------------------

# transY of Optimization-AI/ICML2023_LDR utils.py, re-derived: classDep_letter and classDep_vowel (by index)
LDR_LETTER = {1: 3, 3: 1, 2: 6, 6: 2, 4: 5, 5: 4, 7: 13, 13: 7, 8: 11, 11: 8, 10: 23, 23: 10, 12: 22, 22: 12,
              14: 16, 16: 14, 15: 17, 17: 15, 20: 21, 21: 20}
LDR_VOWEL = {0: 1, 1: 0, 2: 3, 3: 2, 4: 5, 5: 4, 6: 7, 7: 6, 8: 9, 9: 8}


@pytest.mark.parametrize("dataset, code", [("letter", LDR_LETTER), ("vowel", LDR_VOWEL)])
def test_swap_maps_are_the_ldr_codes(dataset, code, gen, nt):
    model = swap(0.3, dataset)
    assert model.mapping_ == code
    c = 26 if dataset == "letter" else 11
    T = model.expected(c)
    for k in range(c):  # T = (1 - eta) I + eta P on the paired classes; the others keep their label
        assert T[k, k] == pytest.approx(0.7 if k in code else 1.0)
        if k in code:
            assert T[k, code[k]] == pytest.approx(0.3)
    y = nt.shuffled_labels(5000, c)
    noisy = model(y, c, None, gen(3))
    moved = noisy.is_noisy
    assert all(code.get(int(a)) == int(b) for a, b in zip(y[moved], noisy.y_noisy[moved], strict=True))
    unpaired = torch.tensor([k not in code for k in range(c)])[y]
    assert not moved[unpaired].any() and moved.any()


def test_swap_names_classes_whatever_their_indices():
    """The map names classes: with the vowels sorted alphabetically (another index order) it still swaps
    hid with hId."""
    model = Swap(0.2)
    model.set_class_names(sorted(VOWELS))
    model.check(11, "vowel")
    assert model.mapping_[sorted(VOWELS).index("hid")] == sorted(VOWELS).index("hId")
    explicit = Swap(0.2, pairs=[["hed", "hid"], [3, 4]])
    explicit.set_class_names(VOWELS)
    explicit.check(11, "mine")
    assert explicit.mapping_ == {10: 0, 0: 10, 3: 4, 4: 3}


@pytest.mark.parametrize("make, match", [
    (lambda: Swap(0.6), "at most 0.5"),
    (lambda: Swap(0.3, pairs="cifar10"), "unknown swap map 'cifar10'; known: auto, letter, vowel"),
    (lambda: Swap(0.3, pairs=[["a", "a"]]), "two different classes"),
    (lambda: Swap(0.3, pairs=[["a", "b"], ["b", "c"]]), "one swap pair only"),
    (lambda: swap(0.3, "digits"), "no swap map for dataset 'digits'; datasets with maps: letter, vowel"),
    (lambda: swap(0.3, "vowel", pairs=[["hid", "heed"]]), "has no class 'heed'"),
])
def test_swap_refusals(make, match):
    with pytest.raises(ValueError, match=match):
        make()

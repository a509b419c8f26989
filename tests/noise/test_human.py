"""CIFAR-N human noise: published rates from the shared files, safe loading, refusals."""

import pickle
import shutil
import zipfile

import numpy as np
import pytest
import torch

from lossbench.noise.flip_maps import CIFAR100_COARSE
from lossbench.noise.human import CifarN, load_label_file

# Wei et al. 2022 and shared/data/README.md: share of labels that differ from clean_label
PUBLISHED = {
    ("cifar10", "aggre"): 0.0901,
    ("cifar10", "rand1"): 0.1723,
    ("cifar10", "rand2"): 0.1812,
    ("cifar10", "rand3"): 0.1764,
    ("cifar10", "worst"): 0.4021,
    ("cifar100", "noisy"): 0.4020,
}
FILE = {"cifar10": "CIFAR-10_human.pt", "cifar100": "CIFAR-100_human.pt"}


@pytest.fixture(scope="module")
def cifar_n(shared_data):
    folder = shared_data / "cifar-n"
    if not (folder / FILE["cifar10"]).is_file():
        pytest.skip(f"CIFAR-N label files not found in {folder}")
    return folder


def clean_labels(folder, dataset):
    return torch.as_tensor(np.asarray(load_label_file(folder / FILE[dataset])["clean_label"]))


@pytest.mark.parametrize(("dataset", "labels"), sorted(PUBLISHED))
def test_published_noise_rates(cifar_n, dataset, labels):
    model = CifarN(dataset, labels, str(cifar_n / FILE[dataset]))
    c = 10 if dataset == "cifar10" else 100
    model.check(c, dataset)
    noisy = model(clean_labels(cifar_n, dataset), c)
    assert noisy.rate == pytest.approx(PUBLISHED[(dataset, labels)], abs=5e-5)
    assert np.array_equal(noisy.expected_T, noisy.realized_T)
    assert np.allclose(noisy.realized_T.sum(1), 1.0)
    assert model.rate is None


def test_restricted_loader_agrees_with_torch_load(cifar_n):
    ours = load_label_file(cifar_n / FILE["cifar100"])
    theirs = torch.load(cifar_n / FILE["cifar100"], weights_only=False)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert np.array_equal(np.asarray(ours[key]), np.asarray(theirs[key]))


def test_cifar100_coarse_table_matches_the_dataset_metadata(cifar_n):
    data = load_label_file(cifar_n / FILE["cifar100"])
    table = np.asarray(CIFAR100_COARSE)
    assert np.array_equal(table[np.asarray(data["clean_label"])], np.asarray(data["clean_coarse_label"]))
    assert np.bincount(table).tolist() == [5] * 20


def test_pairs_only_with_its_dataset(cifar_n):
    worst = CifarN("cifar10", "worst", str(cifar_n / FILE["cifar10"]))
    with pytest.raises(ValueError, match="cifar10n_worst pairs only with dataset cifar10, got mnist"):
        worst.check(10, "mnist")
    with pytest.raises(ValueError, match="cifar100n pairs only with dataset cifar100, got cifar10"):
        CifarN("cifar100", "noisy", str(cifar_n / FILE["cifar100"])).check(10, "cifar10")


def test_missing_file_says_which_where_and_from_where(tmp_path):
    model = CifarN("cifar10", "aggre", str(tmp_path / "cifar-n" / FILE["cifar10"]))
    where = r"CIFAR-10_human\.pt, not found at .*cifar-n.*UCSC-REAL/cifar-10-100n"
    with pytest.raises(FileNotFoundError, match=where):
        model.check(10, "cifar10")


def test_altered_file_fails_the_md5(cifar_n, tmp_path):
    copy = tmp_path / FILE["cifar10"]
    shutil.copy(cifar_n / FILE["cifar10"], copy)
    with open(copy, "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="but the CIFAR-N release of CIFAR-10_human.pt has md5 9664"):
        CifarN("cifar10", "aggre", str(copy)).check(10, "cifar10")


def test_pool_must_be_the_full_training_set_in_order(cifar_n):
    model = CifarN("cifar10", "aggre", str(cifar_n / FILE["cifar10"]))
    with pytest.raises(ValueError, match="the 50,000 CIFAR training images; this training pool has 100"):
        model(torch.zeros(100, dtype=torch.long), 10)
    shuffled = clean_labels(cifar_n, "cifar10").roll(1)
    with pytest.raises(ValueError, match="not in torchvision's order"):
        model(shuffled, 10)


def test_unknown_label_set():
    with pytest.raises(ValueError, match="unknown CIFAR10N label set 'worse'; known: aggre, rand1"):
        CifarN("cifar10", "worse", "x.pt")
    with pytest.raises(ValueError, match="cifar10 and cifar100, not 'svhn'"):
        CifarN("svhn", "aggre", "x.pt")


class _Evil:
    def __reduce__(self):
        import os

        return (os.getcwd, ())


def test_loader_refuses_any_other_global(tmp_path):
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"clean_label": _Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="posix.getcwd|nt.getcwd|not allowed"):
        load_label_file(path)

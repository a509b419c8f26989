"""Dataset builders: real MNIST/Fashion-MNIST, fabricated CIFAR/SVHN files, synthetic, configs."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd
import yaml
from hydra.utils import get_object

from lossbench.conf import CONF_DIR
from lossbench.data import DATASETS, DatasetNotFoundError, Split, vision
from lossbench.data.synthetic import synthetic

CONF = CONF_DIR / "dataset"


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _check_pool(split: Split, pool_size: int) -> None:
    """train_idx and val_idx partition range(pool_size); the pool reassembles in order."""
    both = torch.cat([split.train_idx, split.val_idx]).sort().values
    assert torch.equal(both, torch.arange(pool_size))
    assert len(split.x_train) == len(split.y_train) == len(split.train_idx)
    assert len(split.x_val) == len(split.y_val) == len(split.val_idx)


@pytest.mark.parametrize(
    "name, cls", [("mnist", tvd.MNIST), ("fashion_mnist", tvd.FashionMNIST)]
)
def test_mnist_like_loads_shared_data(shared_data, name, cls):
    split = DATASETS.get(name)(data_dir=str(shared_data), val_size=0.1, split_seed=0)
    assert split.name == name and split.num_classes == 10
    assert (len(split.y_train), len(split.y_val), len(split.y_test)) == (54000, 6000, 10000)
    assert split.input_shape == (1, 28, 28)
    for x in (split.x_train, split.x_val, split.x_test):
        assert x.dtype == torch.uint8
    assert int(split.x_train.min()) == 0 and int(split.x_train.max()) == 255
    assert set(split.y_test.unique().tolist()) == set(range(10))
    assert split.augment is None and len(split.mean) == len(split.std) == 1
    _check_pool(split, 60000)
    reference = cls(root=str(shared_data), train=True, download=False)
    assert torch.equal(split.pool_labels(), reference.targets)
    assert torch.equal(split.x_val[7, 0], reference.data[split.val_idx[7]])


def test_split_is_fixed_by_split_seed(shared_data):
    a = vision.mnist(str(shared_data), val_size=1000, split_seed=3)
    b = vision.mnist(str(shared_data), val_size=1000, split_seed=3)
    c = vision.mnist(str(shared_data), val_size=1000, split_seed=4)
    assert len(a.val_idx) == 1000
    assert torch.equal(a.val_idx, b.val_idx) and not torch.equal(a.val_idx, c.val_idx)


# --- fabricated files in torchvision's formats -------------------------------------------


def _images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)


def _dump(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def fabricate_cifar10(root: Path, per_batch: int = 4, n_test: int = 6) -> tuple[np.ndarray, list[int]]:
    """data_batch_1..5, test_batch, batches.meta under root/cifar-10-batches-py; returns train x, y."""
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    xs, ys = [], []
    for b in range(1, 6):
        x = _images(rng, per_batch)
        y = rng.integers(0, 10, per_batch).tolist()
        _dump(folder / f"data_batch_{b}", {"data": x.reshape(per_batch, -1), "labels": y})
        xs.append(x)
        ys += y
    test = _images(rng, n_test)
    _dump(folder / "test_batch", {"data": test.reshape(n_test, -1), "labels": list(range(n_test))})
    _dump(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})
    return np.concatenate(xs), ys


def fabricate_cifar100(root: Path, n_train: int = 12, n_test: int = 5) -> tuple[np.ndarray, list[int]]:
    """train, test, meta under root/cifar-100-python; returns train x, fine y."""
    rng = np.random.default_rng(1)
    folder = root / "cifar-100-python"
    x = _images(rng, n_train)
    fine = rng.integers(0, 100, n_train).tolist()
    coarse = [f // 5 for f in fine]
    _dump(folder / "train", {"data": x.reshape(n_train, -1), "fine_labels": fine, "coarse_labels": coarse})
    test = _images(rng, n_test)
    _dump(folder / "test", {"data": test.reshape(n_test, -1), "fine_labels": [99] * n_test,
                            "coarse_labels": [19] * n_test})
    _dump(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)],
                            "coarse_label_names": [f"c{i}" for i in range(20)]})
    return x, fine


def fabricate_svhn(root: Path, n_train: int = 9, n_test: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """train_32x32.mat and test_32x32.mat (X [32, 32, 3, N], y in 1..10); returns train X, y."""
    from scipy.io import savemat

    rng = np.random.default_rng(2)
    root.mkdir(parents=True, exist_ok=True)
    out = None
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).reshape(n, 1).astype(np.uint8)
        savemat(root / f"{split}_32x32.mat", {"X": x, "y": y})
        out = out or (x, y)
    return out


def trust_fabricated_cifar(monkeypatch, cls: type, root: Path) -> None:
    """Point torchvision's md5 lists at the fabricated files, so its integrity check runs on them."""
    folder = root / cls.base_folder
    monkeypatch.setattr(cls, "train_list", [[f, _md5(folder / f)] for f, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[f, _md5(folder / f)] for f, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": _md5(folder / cls.meta["filename"])})


def trust_fabricated_svhn(monkeypatch, root: Path) -> None:
    table = {k: [url, name, _md5(root / name) if (root / name).exists() else md5]
             for k, (url, name, md5) in tvd.SVHN.split_list.items()}
    monkeypatch.setattr(tvd.SVHN, "split_list", table)


def test_cifar10_from_fabricated_files(tmp_path, monkeypatch):
    x, y = fabricate_cifar10(tmp_path)
    trust_fabricated_cifar(monkeypatch, tvd.CIFAR10, tmp_path)
    split = vision.cifar10(str(tmp_path), val_size=5, split_seed=0)
    assert split.name == "cifar10" and split.num_classes == 10
    assert (len(split.y_train), len(split.y_val), len(split.y_test)) == (15, 5, 6)
    assert split.input_shape == (3, 32, 32) and split.x_train.dtype == torch.uint8
    _check_pool(split, 20)
    # the pool is torchvision's order: data_batch_1..5 concatenated, CHW per image
    assert torch.equal(split.pool_features(), torch.from_numpy(x))
    assert split.pool_labels().tolist() == y
    assert split.y_test.tolist() == list(range(6))
    assert split.augment == "crop_flip" and len(split.mean) == 3
    assert split.class_names == [f"class{i}" for i in range(10)]


def test_cifar100_from_fabricated_files(tmp_path, monkeypatch):
    x, fine = fabricate_cifar100(tmp_path)
    trust_fabricated_cifar(monkeypatch, tvd.CIFAR100, tmp_path)
    split = vision.cifar100(str(tmp_path), val_size=0.25, split_seed=0)
    assert split.name == "cifar100" and split.num_classes == 100
    assert (len(split.y_train), len(split.y_val), len(split.y_test)) == (9, 3, 5)
    _check_pool(split, 12)
    assert torch.equal(split.pool_features(), torch.from_numpy(x))
    assert split.pool_labels().tolist() == fine
    assert split.y_test.tolist() == [99] * 5


def test_svhn_from_fabricated_files(tmp_path, monkeypatch):
    x, y = fabricate_svhn(tmp_path)
    trust_fabricated_svhn(monkeypatch, tmp_path)
    split = vision.svhn(str(tmp_path), val_size=2, split_seed=0)
    assert split.name == "svhn" and split.num_classes == 10
    assert (len(split.y_train), len(split.y_val), len(split.y_test)) == (7, 2, 4)
    assert split.input_shape == (3, 32, 32) and split.x_train.dtype == torch.uint8
    _check_pool(split, 9)
    # X [H, W, C, N] -> [N, C, H, W]; label 10 (the digit 0) -> class 0
    assert torch.equal(split.pool_features(), torch.from_numpy(x).permute(3, 2, 0, 1))
    assert split.pool_labels().tolist() == [int(v) % 10 for v in y.ravel()]
    assert split.augment == "crop"


MISSING = [
    ("mnist", "MNIST/raw", "train-images-idx3-ubyte"),
    ("fashion_mnist", "FashionMNIST/raw", "t10k-labels-idx1-ubyte"),
    ("cifar10", "cifar-10-batches-py", "data_batch_1"),
    ("cifar100", "cifar-100-python", "meta"),
    ("svhn", "", "train_32x32.mat"),
]


@pytest.mark.parametrize("name, folder, file", MISSING)
def test_missing_files_name_the_files_and_folder(tmp_path, name, folder, file):
    with pytest.raises(DatasetNotFoundError) as info:
        DATASETS.get(name)(data_dir=str(tmp_path / "data"), download=False)
    message = str(info.value)
    assert file in message
    assert str(tmp_path / "data" / folder).rstrip("/") in message
    assert "dataset.download=true" in message


def test_failed_download_is_reported(tmp_path, monkeypatch):
    def offline(self):
        raise URLError("no network")

    monkeypatch.setattr(tvd.CIFAR10, "download", offline)
    with pytest.raises(DatasetNotFoundError, match="could not be downloaded.*no network"):
        vision.cifar10(str(tmp_path), download=True)


def test_corrupted_files_are_refused(tmp_path):
    fabricate_cifar10(tmp_path)  # md5s differ from the real release
    with pytest.raises(DatasetNotFoundError, match="md5"):
        vision.cifar10(str(tmp_path))


def test_unknown_augmentation_lists_the_known(tmp_path):
    with pytest.raises(ValueError, match="known: none, crop, flip, crop_flip"):
        synthetic(num_samples=20, augment="rotate", image_shape=[1, 8, 8])


# --- synthetic -------------------------------------------------------------------------


def test_synthetic_features_are_seeded_and_balanced():
    a = synthetic(num_samples=1000, num_features=8, num_classes=4, test_size=0.2, val_size=0.1, seed=5)
    b = synthetic(num_samples=1000, num_features=8, num_classes=4, test_size=0.2, val_size=0.1, seed=5)
    c = synthetic(num_samples=1000, num_features=8, num_classes=4, test_size=0.2, val_size=0.1, seed=6)
    assert a.name == "synthetic" and a.input_shape == (8,) and a.x_train.dtype == torch.float32
    assert (len(a.y_train), len(a.y_val), len(a.y_test)) == (720, 80, 200)
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)
    labels = torch.cat([a.y_train, a.y_val, a.y_test])
    assert torch.bincount(labels).tolist() == [250] * 4
    _check_pool(a, 800)


@pytest.mark.parametrize("separation, low, high", [(0.0, 0.0, 0.4), (8.0, 0.95, 1.0)])
def test_synthetic_separation_sets_difficulty(separation, low, high):
    split = synthetic(num_samples=2000, num_features=16, num_classes=4, separation=separation, seed=0)
    means = torch.stack([split.x_train[split.y_train == k].mean(0) for k in range(4)])
    pred = torch.cdist(split.x_test, means).argmin(1)
    accuracy = (pred == split.y_test).float().mean().item()
    assert low <= accuracy <= high


def test_synthetic_image_mode_is_cifar_shaped():
    split = synthetic(num_samples=300, num_classes=10, test_size=100, val_size=20,
                      image_shape=[3, 32, 32], augment="crop_flip", name="synthetic_cifar10")
    assert split.name == "synthetic_cifar10" and split.input_shape == (3, 32, 32)
    assert split.x_train.dtype == torch.uint8 and len(split.x_train) == 180
    assert split.augment == "crop_flip" and split.mean == (0.5, 0.5, 0.5)
    x = split.x_train.float() / 255
    assert abs(x.mean().item() - 0.5) < 0.02 and abs(x.std().item() - split.std[0]) < 0.02


def test_synthetic_refuses_augmenting_features():
    with pytest.raises(ValueError, match="image_shape"):
        synthetic(num_samples=20, augment="crop")


# --- configs and registry -------------------------------------------------------------


def _dataset_yamls() -> list[Path]:
    return sorted(CONF.glob("*.yaml"))


@pytest.mark.parametrize("path", _dataset_yamls(), ids=lambda p: p.stem)
def test_dataset_yaml_targets_a_registered_builder(path):
    cfg = yaml.safe_load(path.read_text())
    builder = get_object(cfg["_target_"])
    assert builder is DATASETS.get(builder.registry_name)
    assert cfg.get("name", builder.registry_name) == path.stem  # Split.name is the config name
    if "data_dir" in cfg:
        assert cfg["data_dir"] == "${data_dir}" and cfg["download"] is False


def test_every_registered_dataset_has_a_yaml():
    stems = {p.stem for p in _dataset_yamls()}
    assert set(DATASETS.names()) <= stems

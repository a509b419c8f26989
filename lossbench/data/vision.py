"""Image datasets read with torchvision's classes from ``data_dir`` into uint8 tensor splits.

Each builder returns the whole dataset as uint8 [N, C, H, W] tensors (the
training set in torchvision's order, so per-sample label files such as
CIFAR-N line up), with a validation set carved from training by
``val_size`` and ``split_seed``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from urllib.error import URLError

import numpy as np
import torch

from lossbench.core.dataset_files import expected_files, missing_message
from lossbench.data.registry import register_dataset
from lossbench.data.split import Split, split_from_pool
from lossbench.data.transforms import check_augment

# Per-channel mean and std of the training images scaled to [0, 1].
STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are missing or corrupted and could not be downloaded."""


def _open(
    name: str,
    factory: Callable[..., object],
    data_dir: str | os.PathLike,
    download: bool,
    **kwargs,
) -> object:
    """``factory(download=..., **kwargs)``, or an error naming the files and their folder
    (lossbench.core.dataset_files: the same line the config checks give before the run starts)."""
    expected = expected_files(name, data_dir)
    missing = [p for p in expected if not p.is_file()]
    where = f"{name} reads {', '.join(p.name for p in expected)} in {expected[0].parent}"
    hint = "Put the files there, or point data_dir at the folder that holds them"
    if missing and not download:
        raise DatasetNotFoundError(missing_message(name, data_dir))
    try:
        return factory(download=download, **kwargs)
    except (RuntimeError, OSError, URLError, ValueError) as exc:
        reason = "could not be downloaded" if missing else "failed torchvision's md5 check or were unreadable"
        raise DatasetNotFoundError(
            f"{where}; the files {reason} ({type(exc).__name__}: {exc}). {hint}."
        ) from exc


def _check_val(val_size: float | int) -> None:
    if val_size < 0:
        raise ValueError(f"dataset.val_size must be a fraction in [0, 1) or a count >= 0, got {val_size}")


def _mnist_like(
    name: str, cls_name: str, data_dir: str | os.PathLike, download: bool,
    val_size: float | int, split_seed: int, augment: str | None,
) -> Split:
    import torchvision.datasets as tvd

    _check_val(val_size)
    cls = getattr(tvd, cls_name)
    sets = [_open(name, cls, data_dir, download, root=str(data_dir), train=t) for t in (True, False)]
    (x_pool, y_pool), (x_test, y_test) = ((s.data.unsqueeze(1).contiguous(), s.targets.long()) for s in sets)
    mean, std = STATS[name]
    return split_from_pool(
        name, 10, x_pool, y_pool, x_test, y_test, val_size, split_seed,
        mean=mean, std=std, augment=check_augment(augment), class_names=list(sets[0].classes),
    )


@register_dataset("mnist")
def mnist(
    data_dir: str = "data", download: bool = False, val_size: float | int = 0.1,
    split_seed: int = 0, augment: str | None = None,
) -> Split:
    """MNIST (LeCun et al. 1998): 60,000 + 10,000 grey 28x28 digits, 10 classes.

    Files: ``<data_dir>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``
    (torchvision's layout; with only the ``.gz`` archives there, download=true
    extracts them without network).
    """
    return _mnist_like("mnist", "MNIST", data_dir, download, val_size, split_seed, augment)


@register_dataset("fashion_mnist")
def fashion_mnist(
    data_dir: str = "data", download: bool = False, val_size: float | int = 0.1,
    split_seed: int = 0, augment: str | None = None,
) -> Split:
    """Fashion-MNIST (Xiao et al. 2017): 60,000 + 10,000 grey 28x28 clothing images, 10 classes.

    Files: ``<data_dir>/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``.
    """
    return _mnist_like("fashion_mnist", "FashionMNIST", data_dir, download, val_size, split_seed, augment)


def _cifar(
    name: str, cls_name: str, num_classes: int, data_dir: str | os.PathLike, download: bool,
    val_size: float | int, split_seed: int, augment: str | None,
) -> Split:
    import torchvision.datasets as tvd

    _check_val(val_size)
    cls = getattr(tvd, cls_name)
    sets = [_open(name, cls, data_dir, download, root=str(data_dir), train=t) for t in (True, False)]
    (x_pool, y_pool), (x_test, y_test) = (
        (torch.from_numpy(s.data).permute(0, 3, 1, 2).contiguous(), torch.as_tensor(s.targets).long())
        for s in sets
    )
    mean, std = STATS[name]
    return split_from_pool(
        name, num_classes, x_pool, y_pool, x_test, y_test, val_size, split_seed,
        mean=mean, std=std, augment=check_augment(augment), class_names=list(sets[0].classes),
    )


@register_dataset("cifar10")
def cifar10(
    data_dir: str = "data", download: bool = False, val_size: float | int = 5000,
    split_seed: int = 0, augment: str | None = "crop_flip",
) -> Split:
    """CIFAR-10 (Krizhevsky 2009): 50,000 + 10,000 colour 32x32 images, 10 classes.

    Files: ``<data_dir>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``
    (the python version). CIFAR-10N's human labels align with this training order.
    """
    return _cifar("cifar10", "CIFAR10", 10, data_dir, download, val_size, split_seed, augment)


@register_dataset("cifar100")
def cifar100(
    data_dir: str = "data", download: bool = False, val_size: float | int = 5000,
    split_seed: int = 0, augment: str | None = "crop_flip",
) -> Split:
    """CIFAR-100 (Krizhevsky 2009): 50,000 + 10,000 colour 32x32 images, 100 classes.

    Files: ``<data_dir>/cifar-100-python/{train, test, meta}``. CIFAR-100N's
    human labels align with this training order.
    """
    return _cifar("cifar100", "CIFAR100", 100, data_dir, download, val_size, split_seed, augment)


@register_dataset("svhn")
def svhn(
    data_dir: str = "data", download: bool = False, val_size: float | int = 5000,
    split_seed: int = 0, augment: str | None = "crop",
) -> Split:
    """SVHN (Netzer et al. 2011): 73,257 + 26,032 colour 32x32 house-number digits, 10 classes.

    Files: ``<data_dir>/train_32x32.mat`` and ``<data_dir>/test_32x32.mat``
    (torchvision reads them from its root itself). The digit 0, labelled 10 in
    the files, is class 0. The ``extra`` set is not used. Default augmentation
    is crop without flip: a mirrored digit is not a digit.
    """
    import torchvision.datasets as tvd

    _check_val(val_size)
    sets = [
        _open("svhn", tvd.SVHN, data_dir, download, root=str(data_dir), split=s) for s in ("train", "test")
    ]
    (x_pool, y_pool), (x_test, y_test) = (
        (torch.from_numpy(np.ascontiguousarray(s.data)), torch.from_numpy(s.labels).long()) for s in sets
    )
    mean, std = STATS["svhn"]
    return split_from_pool(
        "svhn", 10, x_pool, y_pool, x_test, y_test, val_size, split_seed,
        mean=mean, std=std, augment=check_augment(augment), class_names=[str(i) for i in range(10)],
    )


"""The files each image dataset reads below ``data_dir`` (torchvision's layout), checked without torch.

One table serves the builders (lossbench.data.vision) and the config checks before a run starts
(lossbench.lifecycle.validation), so that a missing file is refused in a fraction of a second, and a
``data_dir`` that points one level too deep (at ``MNIST/`` rather than the folder that holds it)
is recognised and the right folder named.
"""

from __future__ import annotations

import os
from pathlib import Path

_MNIST_FILES = [f"{prefix}-{kind}-ubyte" for prefix in ("train", "t10k")
                for kind in ("images-idx3", "labels-idx1")]

# dataset -> the files it reads, relative to data_dir
FILES: dict[str, list[str]] = {
    "mnist": [f"MNIST/raw/{f}" for f in _MNIST_FILES],
    "fashion_mnist": [f"FashionMNIST/raw/{f}" for f in _MNIST_FILES],
    "cifar10": [f"cifar-10-batches-py/{f}" for f in
                (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")],
    "cifar100": [f"cifar-100-python/{f}" for f in ("train", "test", "meta")],
    "svhn": ["train_32x32.mat", "test_32x32.mat"],
}


def expected_files(name: str, data_dir: str | os.PathLike) -> list[Path]:
    """The paths dataset ``name`` reads below ``data_dir``."""
    return [Path(data_dir) / f for f in FILES[name]]


def too_deep(name: str, data_dir: str | os.PathLike) -> tuple[Path, str] | None:
    """When ``data_dir`` is a folder inside the dataset's layout that already holds its files
    (``.../MNIST`` holds ``raw/``): (the folder to give instead, what this one holds); else None."""
    relative = [Path(f).parts for f in FILES[name]]
    data_dir = Path(data_dir)
    for k in range(1, min(len(r) for r in relative)):
        if len(data_dir.parents) >= k and all(data_dir.joinpath(*r[k:]).is_file() for r in relative):
            rest = relative[0][k:]
            return data_dir.parents[k - 1], (f"{rest[0]}/" if len(rest) > 1 else "the files")
    return None


def missing_message(name: str, data_dir: str | os.PathLike) -> str | None:
    """One line when a file of dataset ``name`` is missing below ``data_dir`` (None: all there)."""
    expected = expected_files(name, data_dir)
    missing = [p for p in expected if not p.is_file()]
    if not missing:
        return None
    where = f"{name} reads {', '.join(p.name for p in expected)} in {expected[0].parent}"
    deeper = too_deep(name, data_dir)
    if deeper is not None:
        parent, holds = deeper
        levels = len(Path(data_dir).parts) - len(parent.parts)
        depth = "one level" if levels == 1 else f"{levels} levels"
        return f"{where}; data_dir={data_dir} is {depth} too deep: this folder itself holds {holds}; " \
               f"set data_dir={parent}"
    return (f"{where}; missing: {', '.join(p.name for p in missing)}. Put the files there, or point data_dir "
            f"at the folder that holds them, or set dataset.download=true on a machine with network.")

"""Real human label noise: the CIFAR-10N and CIFAR-100N label files (Wei et al. 2022)."""

from __future__ import annotations

import codecs
import hashlib
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lossbench.noise.base import NoiseModel, NoisyLabels, realized_transition, register_noise

SOURCE = "https://github.com/UCSC-REAL/cifar-10-100n (folder data/)"
POOL_SIZE = 50_000

# dataset -> (file name, md5 of the release at commit 49df7d8a69e355470c77c1c2f2424916325a394b)
FILES: dict[str, tuple[str, str]] = {
    "cifar10": ("CIFAR-10_human.pt", "96644db5574813cae939af5f7f2a0aec"),
    "cifar100": ("CIFAR-100_human.pt", "a67b45c1d7992051865b5c755bd68bb1"),
}

# dataset -> {our label-set name: key in the file}
LABEL_SETS: dict[str, dict[str, str]] = {
    "cifar10": {
        "aggre": "aggre_label",
        "rand1": "random_label1",
        "rand2": "random_label2",
        "rand3": "random_label3",
        "worst": "worse_label",
    },
    "cifar100": {"noisy": "noisy_label"},
}

NUM_CLASSES = {"cifar10": 10, "cifar100": 100}


def _numpy_globals() -> dict[tuple[str, str], object]:
    reconstruct = np.empty(0).__reduce__()[0]  # numpy's _reconstruct, under numpy 1 or 2
    allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays; any other global is refused."""

    allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> object:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"CIFAR-N file refers to {module}.{name}, which is not allowed"
            ) from None

    def persistent_load(self, pid: object) -> object:
        raise pickle.UnpicklingError("CIFAR-N files hold no tensors; this file does")


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_label_file(path: Path) -> dict:
    """The dict inside a CIFAR-N ``.pt`` file (a torch zip holding one pickle), read without torch.

    Only numpy's array-reconstruction globals are admitted, so loading runs no
    other code, whatever the file holds.
    """
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(names) != 1:
            raise ValueError(f"{path} is not a torch.save archive with one data.pkl")
        data = _NumpyOnlyUnpickler(io.BytesIO(archive.read(names[0]))).load()
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a {type(data).__name__}, expected a dict of label arrays")
    return data


@register_noise("cifar_n")
class CifarN(NoiseModel):
    """Human annotations of the CIFAR training images: Wei et al. 2022, "Learning with
    Noisy Labels Revisited: A Study Using Real-World Human Annotations", ICLR.

    CIFAR-10N label sets: ``aggre`` (majority vote, 9.01% noise), ``rand1`` ..
    ``rand3`` (one annotator each, 17.23 / 18.12 / 17.64%), ``worst`` (a wrong
    annotation whenever one exists; the file's ``worse_label``, 40.21%);
    CIFAR-100N: ``noisy`` (40.20%). The file is checked against its pinned md5
    and read with an unpickler that admits only numpy arrays. The labels are in
    torchvision's training order, which is the pool order; the pool's clean
    labels must equal the file's ``clean_label``. Nothing is drawn: the seed
    does not matter. ``expected_T`` is the empirical transition matrix of the
    human labels against the clean ones (equal to ``realized_T``), not a
    designed matrix.
    """

    kind = "human"

    def __init__(self, dataset: str, labels: str, path: str) -> None:
        super().__init__(None)
        if dataset not in LABEL_SETS:
            raise ValueError(f"CIFAR-N has label files for cifar10 and cifar100, not '{dataset}'")
        if labels not in LABEL_SETS[dataset]:
            raise ValueError(
                f"unknown {dataset.upper()}N label set '{labels}'; known: {', '.join(LABEL_SETS[dataset])}"
            )
        self.dataset = dataset
        self.labels = labels
        self.path = Path(path)

    @property
    def config_name(self) -> str:
        return "cifar100n" if self.dataset == "cifar100" else f"cifar10n_{self.labels}"

    def describe(self) -> str:
        return f"{self.config_name} (human noise)"

    def check(self, num_classes: int, dataset: str) -> None:
        if dataset != self.dataset:
            raise ValueError(f"{self.config_name} pairs only with dataset {self.dataset}, got {dataset}")
        if num_classes != NUM_CLASSES[self.dataset]:
            raise ValueError(
                f"{self.config_name} labels have {NUM_CLASSES[self.dataset]} classes, "
                f"but dataset '{dataset}' has {num_classes}"
            )
        self._verified_path()

    def _verified_path(self) -> Path:
        name, md5 = FILES[self.dataset]
        path = self.path.expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(
                f"{self.config_name} needs the CIFAR-N label file {name}, not found at {path}. "
                f"Put {name} there (or set data_dir=DIR to use DIR/cifar-n/{name}, or noise.path=FILE); "
                f"get it from {SOURCE}"
            )
        found = md5sum(path)
        if found != md5:
            raise ValueError(
                f"{path} has md5 {found}, but the CIFAR-N release of {name} has md5 {md5}; "
                f"get the original from {SOURCE}"
            )
        return path

    def corrupt(
        self, y_clean: Tensor, num_classes: int, features: Tensor | None, generator: torch.Generator
    ) -> NoisyLabels:
        if len(y_clean) != POOL_SIZE:
            raise ValueError(
                f"{self.config_name} labels the {POOL_SIZE:,} CIFAR training images; "
                f"this training pool has {len(y_clean):,} (CIFAR-N needs the full training set)"
            )
        data = load_label_file(self._verified_path())
        clean = torch.as_tensor(np.asarray(data["clean_label"], dtype=np.int64))
        if not torch.equal(clean, y_clean):
            raise ValueError(
                f"the training labels differ from CIFAR-N's clean_label at "
                f"{int((clean != y_clean).sum())} of {POOL_SIZE:,} positions: the pool is not in "
                f"torchvision's order, so the human labels would not line up"
            )
        y_noisy = torch.as_tensor(np.asarray(data[LABEL_SETS[self.dataset][self.labels]], dtype=np.int64))
        realized = realized_transition(y_clean, y_noisy, num_classes)
        return NoisyLabels(y_noisy, y_noisy != y_clean, realized, realized.copy())

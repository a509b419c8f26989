"""Tabular datasets: a local file of samples (CSV, LIBSVM/svmlight, .npz) as a Split.

``dataset=tabular dataset.path=my.csv dataset.label=target`` reads a researcher's own file; the shared
UCI/Statlog sets are named entries (``dataset=vehicle``, ``vowel``, ``letter``, ...), each a YAML
that points this builder at ``${data_dir}/tabular/<name>.csv``.

How the rows are split, in order:

1. the test set: a second file (``test_path``), the rows a column marks ``test`` (``split_column``),
   the fold ``fold`` of a k-fold split of all rows (``folds`` > 1 with ``fold_holds: test``), or a
   seeded holdout of ``test_size``;
2. the validation set, from the rest (the pool): the rows the column marks ``val``, the fold
   ``fold`` of a k-fold split of the pool (``folds`` > 1 with ``fold_holds: val``, the LDR
   protocol's 5-fold cross-validation), or a seeded holdout of ``val_size``;
3. the features are scaled (``scaling``) with statistics of the training part only.

Folds come from scikit-learn's ``StratifiedKFold`` (``stratify``) or ``KFold``, shuffled with
``split_seed`` (``shuffle``): the k runs ``dataset.fold=0..k-1`` partition the rows, and a sweep over
them (``-m dataset.fold=0,1,2,3,4``) is one cross-validation, which ``lossbench report`` averages as
it averages seeds.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from lossbench.data.readers import (
    Table,
    TabularFileError,
    file_format,
    read_csv,
    read_npz,
    read_svmlight,
    sha256,
)
from lossbench.data.registry import register_dataset
from lossbench.data.split import Split

SCALINGS = ("standard", "minmax", "none")
FOLD_HOLDS = ("val", "test")
SPLIT_VALUES = ("train", "val", "test")


def read_table(path: str | Path, fmt: str = "auto", label: str = "label", extra: tuple[str, ...] = (),
               features: list[str] | None = None) -> Table:
    """The file at ``path`` in its format (``file_format``)."""
    fmt = file_format(path, fmt)
    if fmt == "csv":
        return read_csv(path, label, extra, features)
    if extra or features:
        what = "split_column" if extra else "features"
        raise TabularFileError(path, f"dataset.{what} names CSV columns; a {fmt} file has none")
    if fmt == "npz":
        return read_npz(path)
    return read_svmlight([Path(path)])[0]


def class_order(labels: np.ndarray, classes: list | None, path: Path) -> list:
    """The classes in index order: ``classes`` as given (each label must be one of them), else the
    sorted distinct labels (numbers numerically, text alphabetically): the same for any row order."""
    if labels.dtype.kind == "f" and np.isnan(labels).any():
        raise TabularFileError(path, f"{int(np.isnan(labels).sum())} row(s) have no label (NaN)")
    found = sorted(set(labels.tolist()))
    if classes is None:
        if len(found) < 2:
            raise TabularFileError(path, f"needs at least 2 classes, found {len(found)} ({found})")
        return found
    wanted = [str(c) for c in classes]
    unknown = [v for v in found if str(v) not in wanted]
    if unknown or len(set(wanted)) != len(wanted) or len(wanted) < 2:
        problem = (f"labels {unknown[:5]} are not in dataset.classes" if unknown
                   else "dataset.classes must list at least 2 distinct classes")
        raise TabularFileError(path, f"{problem} ({wanted})")
    return [next((v for v in found if str(v) == c), c) for c in wanted]


def encode(labels: np.ndarray, classes: list) -> np.ndarray:
    """Class indices of ``labels`` in the order ``classes``."""
    index = {str(c): i for i, c in enumerate(classes)}
    return np.array([index[str(v)] for v in labels.tolist()], dtype=np.int64)


def fit_scaling(x_train: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale) such that x' = (x - shift) * scale, from the training rows only.

    ``standard``: shift = mean, scale = 1 / std (population std; a constant feature gets scale 1,
    as scikit-learn's StandardScaler). ``minmax``: x' in [-1, 1] on the training rows as LIBSVM's
    svm-scale maps them, x' = -1 + 2 (x - min) / (max - min); a constant feature maps to 0 (svm-scale
    writes no value for it, which LIBSVM reads as 0). ``none``: shift 0, scale 1.
    """
    d = x_train.shape[1]
    if method == "none":
        return np.zeros(d), np.ones(d)
    if method == "standard":
        std = x_train.std(0)
        return x_train.mean(0), 1.0 / np.where(std > 0, std, 1.0)
    if method == "minmax":
        lo, hi = x_train.min(0), x_train.max(0)
        span = hi - lo
        constant = span <= 0
        shift = np.where(constant, lo, (lo + hi) / 2)
        return shift, np.where(constant, 0.0, 2.0 / np.where(constant, 1.0, span))
    raise ValueError(f"unknown dataset.scaling '{method}'; known: {', '.join(SCALINGS)}")


def _folds(y: np.ndarray, folds: int, fold: int, stratify: bool, shuffle: bool, seed: int,
           path: Path, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(rest, held-out fold) positions: fold ``fold`` of a (Stratified)KFold over ``y``."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if len(y) < folds:
        raise TabularFileError(path, f"{len(y)} rows of {what} cannot make {folds} folds")
    kwargs = {"n_splits": folds, "shuffle": shuffle, "random_state": seed if shuffle else None}
    if stratify:
        counts = np.bincount(y)
        smallest = int(counts[counts > 0].min())
        if smallest < folds:
            raise TabularFileError(
                path, f"a class has {smallest} row(s) in {what}, fewer than dataset.folds={folds}; "
                      "use fewer folds or dataset.stratify=false")
        splitter = StratifiedKFold(**kwargs)
    else:
        splitter = KFold(**kwargs)
    rest, held = list(splitter.split(np.zeros(len(y)), y))[fold]
    return np.sort(rest), np.sort(held)


def _holdout(y: np.ndarray, size: float | int, stratify: bool, shuffle: bool, seed: int, path: Path,
             what: str) -> tuple[np.ndarray, np.ndarray]:
    """(rest, held-out) positions: ``size`` (a fraction or a count) of ``y`` held out."""
    from sklearn.model_selection import train_test_split

    n = len(y)
    # scikit-learn's count: ceil(size n) for a fraction (so the rows equal train_test_split's, as the
    # LegendreTron code calls it), else the number itself
    count = math.ceil(size * n) if isinstance(size, float) and size < 1 else int(size)
    if count == 0:
        return np.arange(n), np.arange(0)
    if not 0 < count < n:
        raise TabularFileError(path, f"holding out {size} of {n} rows for {what} leaves none to train on")
    strata = y if stratify and shuffle else None
    if strata is not None:
        counts = np.bincount(y)
        counts = counts[counts > 0]
        if counts.min() < 2 or count < len(counts) or n - count < len(counts):
            raise TabularFileError(
                path, f"a stratified {what} split of {count} of {n} rows needs every class twice and a place "
                      f"for each of the {len(counts)} classes on both sides; set dataset.stratify=false")
    rest, held = train_test_split(np.arange(n), test_size=size if isinstance(size, float) else count,
                                  shuffle=shuffle, random_state=seed if shuffle else None, stratify=strata)
    return np.sort(rest), np.sort(held)


def _marked(values: np.ndarray, column: str, path: Path) -> dict[str, np.ndarray]:
    marks = np.array([str(v).strip().lower() for v in values])
    bad = sorted(set(marks.tolist()) - set(SPLIT_VALUES))
    if bad:
        raise TabularFileError(path, f"split column '{column}' holds {bad[:3]}; its values must be "
                                     f"{', '.join(SPLIT_VALUES)}")
    found = {v: np.flatnonzero(marks == v) for v in SPLIT_VALUES}
    if not len(found["train"]) or not len(found["test"]):
        raise TabularFileError(path, f"split column '{column}' must mark some rows train and some test")
    return found


@register_dataset("tabular")
def tabular(
    path: str,
    label: str = "label",
    format: str = "auto",  # noqa: A002 -- the config key a user writes
    name: str | None = None,
    features: list[str] | None = None,
    classes: list[str] | None = None,
    scaling: str = "standard",
    test_size: float | int = 0.2,
    val_size: float | int = 0.1,
    split_seed: int = 0,
    shuffle: bool = True,
    stratify: bool = True,
    folds: int = 0,
    fold: int = 0,
    fold_holds: str = "val",
    test_path: str | None = None,
    split_column: str | None = None,
) -> Split:
    """A table of samples from a file: features [N, D] (float32, scaled) and their classes.

    ``path``: a CSV file with a header (the class in column ``label``, strings or numbers), a
    LIBSVM/svmlight file, or an .npz archive (``x`` and ``y``, or ``arr_0`` and ``arr_1``; one-hot
    labels allowed); ``format`` auto picks by the file name. ``features``: the CSV columns to use
    (default: all but the label and the split column). Classes get indices in the order ``classes``
    (default: sorted), recorded as the Split's class names. Splitting, folds and scaling: see the
    module docstring; the summary records the file (and its SHA-256), the split and the scaling.
    """
    source = Path(path)
    if fold_holds not in FOLD_HOLDS:
        raise ValueError(f"unknown dataset.fold_holds '{fold_holds}'; known: {', '.join(FOLD_HOLDS)}")
    if scaling not in SCALINGS:
        raise ValueError(f"unknown dataset.scaling '{scaling}'; known: {', '.join(SCALINGS)}")
    if folds == 1 or folds < 0:
        raise ValueError(f"dataset.folds must be 0 (no cross-validation) or at least 2, got {folds}")
    if folds and not 0 <= fold < folds:
        raise ValueError(f"dataset.fold must be in 0..{folds - 1} (dataset.folds={folds}), got {fold}")
    if test_path is not None and split_column is not None:
        raise ValueError("give the test set by dataset.test_path or by dataset.split_column, not both")
    if folds and fold_holds == "test" and (test_path is not None or split_column is not None):
        raise ValueError("dataset.fold_holds=test makes each fold the test set: it takes no test_path or "
                         "split_column")
    fmt = file_format(source, format)
    extra = (split_column,) if split_column else ()
    if fmt == "svmlight" and test_path is not None:
        table, test_table = read_svmlight([source, Path(test_path)])
    else:
        table = read_table(source, fmt, label, extra, features)
        test_table = None if test_path is None else read_table(test_path, format, label, (), features)
    if test_table is not None and test_table.columns != table.columns:
        raise TabularFileError(test_path, f"its feature columns differ from those of {source}")
    all_labels = table.labels if test_table is None else np.concatenate([table.labels, test_table.labels])
    order = class_order(all_labels, classes, source)
    y_all = encode(table.labels, order)
    x_all = table.x

    # 1. the test set
    marked = _marked(table.extra[split_column], split_column, source) if split_column else None
    if test_table is not None:
        pool, test = np.arange(len(y_all)), None
        x_test, y_test = test_table.x, encode(test_table.labels, order)
        how = f"test file {test_path}"
    else:
        if marked is not None:
            test = marked["test"]
            how = f"rows marked test in column {split_column}"
        elif folds and fold_holds == "test":
            _, test = _folds(y_all, folds, fold, stratify, shuffle, split_seed, source, "the file")
            how = f"fold {fold} of {folds}"
        else:
            _, test = _holdout(y_all, test_size, stratify, shuffle, split_seed, source, "the test set")
            how = f"holdout of {test_size}"
        pool = np.setdiff1d(np.arange(len(y_all)), test)
        x_test, y_test = x_all[test], y_all[test]
    x_pool, y_pool = x_all[pool], y_all[pool]

    # 2. the validation set, from the pool
    if marked is not None and len(marked["val"]):
        val_idx = np.flatnonzero(np.isin(pool, marked["val"]))
        train_idx = np.setdiff1d(np.arange(len(pool)), val_idx)
        val_how = f"rows marked val in column {split_column}"
    elif folds and fold_holds == "val":
        train_idx, val_idx = _folds(y_pool, folds, fold, stratify, shuffle, split_seed, source,
                                    "the training pool")
        val_how = f"fold {fold} of {folds} of the pool"
    else:
        train_idx, val_idx = _holdout(y_pool, val_size, stratify, shuffle, split_seed + 1, source,
                                      "validation")
        val_how = f"holdout of {val_size} of the pool"

    # 3. scaling from the training part only
    shift, scale = fit_scaling(x_pool[train_idx], scaling)

    def scaled(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((x - shift) * scale, dtype=torch.float32)

    x_pool_t, y_pool_t = scaled(x_pool), torch.as_tensor(y_pool)
    train_t, val_t = torch.as_tensor(train_idx, dtype=torch.long), torch.as_tensor(val_idx, dtype=torch.long)
    record = {
        "file": str(source), "format": fmt, "sha256": sha256(source), "rows": int(len(y_all)),
        "features": len(table.columns), "label": label if fmt == "csv" else None,
        "test": how, "validation": val_how, "folds": int(folds), "fold": int(fold) if folds else None,
        "scaling": {"method": scaling, "fitted_on": "train", "shift": shift.tolist(),
                    "scale": scale.tolist()},
    }
    if test_table is not None:
        record["test_sha256"] = sha256(test_path)
    return Split(
        name=name or source.name.split(".")[0],
        num_classes=len(order),
        x_train=x_pool_t[train_t], y_train=y_pool_t[train_t],
        x_val=x_pool_t[val_t], y_val=y_pool_t[val_t],
        x_test=scaled(x_test), y_test=torch.as_tensor(y_test),
        train_idx=train_t, val_idx=val_t,
        class_names=[str(c) for c in order],
        extras={"record": record},
    )

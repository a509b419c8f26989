"""Reading a researcher's own table of samples: CSV, LIBSVM/svmlight or .npz, into features and labels.

Every reader returns a ``Table``: float64 features [N, D], the raw label of each row (strings or
numbers, as the file holds them), the feature names, and the file. Whatever is wrong with a file is a
``TabularFileError`` whose message is one line: the file, then what is wrong and what would do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMATS = ("auto", "csv", "svmlight", "npz")
# .npz keys: (features, labels); np.savez's unnamed arrays are arr_0, arr_1 (the LDR code's files)
NPZ_KEYS = (("x", "y"), ("X", "y"), ("arr_0", "arr_1"))


class TabularFileError(ValueError):
    """A data file that cannot be used; the message names the file and what is wrong."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


@dataclass
class Table:
    """What a file holds: ``x`` float64 [N, D], ``labels`` [N] (raw values), ``columns`` (D names),
    ``extra`` (columns read beside the features, such as a split column: name -> [N] raw values)."""

    path: Path
    format: str
    x: np.ndarray
    labels: np.ndarray
    columns: list[str]
    extra: dict[str, np.ndarray]


def file_format(path: str | Path, fmt: str = "auto") -> str:
    """``fmt``, or for ``auto`` the format a file name implies: .csv/.tsv (also gzipped) -> csv,
    .npz -> npz, anything else (LIBSVM's vehicle.scale, letter.scale.t, x.svm, ...) -> svmlight."""
    if fmt not in FORMATS:
        raise TabularFileError(path, f"unknown format '{fmt}'; known: {', '.join(FORMATS)}")
    if fmt != "auto":
        return fmt
    name = Path(path).name.lower().removesuffix(".gz")
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith(".npz"):
        return "npz"
    return "svmlight"


def sha256(path: str | Path) -> str:
    """The file's SHA-256 (recorded with a run, so that a changed file shows)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_file(path: Path) -> None:
    if not path.exists():
        raise TabularFileError(path, "no such file (a relative path is read from the working directory)")
    if not path.is_file():
        raise TabularFileError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise TabularFileError(path, "the file is empty")


def _check_finite(path: Path, x: np.ndarray, columns: list[str]) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        counts = bad.sum(0)
        where = [f"{columns[j]} ({counts[j]} row{'s' if counts[j] > 1 else ''})"
                 for j in np.flatnonzero(counts)]
        raise TabularFileError(
            path, f"missing or non-finite feature values (NaN, empty or inf) in {', '.join(where[:5])}"
            f"{', ...' if len(where) > 5 else ''}; fill or drop them before training")


def read_csv(path: str | Path, label: str, extra: tuple[str, ...] = (),
             features: list[str] | None = None) -> Table:
    """A CSV (or .tsv) file with a header: one row a sample, the class in column ``label``.

    The features are ``features`` (column names), by default every other column but ``extra`` (a
    split column, read beside). Every feature must be numeric and present in every row.
    """
    import pandas as pd

    path = Path(path)
    _check_file(path)
    sep = "\t" if path.name.lower().removesuffix(".gz").endswith(".tsv") else ","
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise TabularFileError(path, "the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TabularFileError(path, f"not a readable CSV file ({first})") from None
    columns = [str(c) for c in frame.columns]
    if len(frame) == 0:
        raise TabularFileError(path, f"no rows under the header ({len(columns)} columns)")
    wanted = [label, *extra, *(features or [])]
    missing = [c for c in wanted if c not in columns]
    if missing:
        shown = ", ".join(columns[:12]) + (", ..." if len(columns) > 12 else "")
        raise TabularFileError(path, f"no column '{missing[0]}' (columns: {shown}); set dataset.label "
                                     "(and dataset.features) to the file's column names")
    names = list(features) if features else [c for c in columns if c != label and c not in extra]
    if not names:
        raise TabularFileError(path, f"no feature columns besides the label '{label}'")
    labels = frame[label].str.strip().to_numpy(dtype=object)
    if (labels == "").any():
        raise TabularFileError(path, f"{int((labels == '').sum())} row(s) have no value in the label column "
                                     f"'{label}'")
    x = np.empty((len(frame), len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        text = frame[name].str.strip()
        values = pd.to_numeric(text.replace("", "nan"), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(values) & ~text.str.lower().isin(["", "nan", "na", "n/a", "null", "none"]).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise TabularFileError(
                path, f"feature column '{name}' is not numeric (row {i + 2} holds {text.iloc[i]!r}); "
                      "encode it as numbers, or leave it out with dataset.features=[...]")
        x[:, j] = values
    _check_finite(path, x, names)
    return Table(path, "csv", x, _numeric_if_possible(labels), names,
                 {c: frame[c].str.strip().to_numpy(dtype=object) for c in extra})


def _numeric_if_possible(labels: np.ndarray) -> np.ndarray:
    """Labels as numbers when every one is a number (so 1, 2, 10 sort as numbers), else as strings."""
    try:
        values = labels.astype(np.float64)
    except ValueError:
        return labels.astype(str)
    if np.isfinite(values).all() and (values == np.round(values)).all():
        return values.astype(np.int64)
    return values


def read_svmlight(paths: list[Path]) -> list[Table]:
    """LIBSVM/svmlight files (``label index:value ...``; scikit-learn's ``load_svmlight_files``), read
    together so that they share one feature count. Features absent from a row are 0."""
    from sklearn.datasets import load_svmlight_files

    for path in paths:
        _check_file(path)
    try:
        loaded = load_svmlight_files([str(p) for p in paths], dtype=np.float64)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = paths[0] if len(paths) == 1 else ", ".join(map(str, paths))
        raise TabularFileError(where, f"not a readable LIBSVM/svmlight file ({first}); for a CSV file set "
                                      "dataset.format=csv") from None
    tables = []
    for path, x, y in zip(paths, loaded[0::2], loaded[1::2], strict=True):
        x = x.toarray()
        if len(y) == 0:
            raise TabularFileError(path, "no samples in the file")
        columns = [str(j + 1) for j in range(x.shape[1])]  # LIBSVM numbers features from 1
        _check_finite(path, x, columns)
        tables.append(Table(path, "svmlight", x, _numeric_if_possible(y.astype(object)), columns, {}))
    return tables


def read_npz(path: str | Path) -> Table:
    """A NumPy .npz archive holding features [N, D] and labels: keys ``x`` (or ``X``) and ``y``, or
    np.savez's unnamed ``arr_0`` and ``arr_1``; labels as [N] class values or [N, C] one-hot rows."""
    path = Path(path)
    _check_file(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
            pair = next(((a, b) for a, b in NPZ_KEYS if a in keys and b in keys), None)
            if pair is None:
                raise TabularFileError(path, f"holds arrays {', '.join(keys) or '(none)'}; expected features "
                                             "and labels as x and y (or arr_0 and arr_1)")
            x, y = archive[pair[0]], archive[pair[1]]
    except TabularFileError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TabularFileError(path, f"not a readable .npz archive ({first})") from None
    if x.ndim != 2 or x.dtype.kind not in "biuf":
        raise TabularFileError(path, f"features must be a numeric [N, D] array, got {x.dtype} of shape "
                                     f"{list(x.shape)}")
    if y.ndim == 2:  # one-hot rows
        if y.shape[0] != x.shape[0] or not np.isin(y, (0, 1)).all() or (y.sum(1) != 1).any():
            raise TabularFileError(path, f"2-D labels must be one-hot rows, one per sample; got shape "
                                         f"{list(y.shape)}")
        y = y.argmax(1)
    if y.ndim != 1 or len(y) != len(x):
        raise TabularFileError(path, f"labels must hold one value per sample ({len(x)}), got shape "
                                     f"{list(y.shape)}")
    if len(x) == 0:
        raise TabularFileError(path, "no samples in the file")
    columns = [str(j) for j in range(x.shape[1])]
    x = x.astype(np.float64)
    _check_finite(path, x, columns)
    labels = y.astype(str) if y.dtype.kind in "US" else _numeric_if_possible(y.astype(object))
    return Table(path, "npz", x, labels, columns, {})

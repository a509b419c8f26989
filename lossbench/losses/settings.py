"""Per-dataset loss settings: what conf/dataset_loss/<dataset>_<loss>.yaml sets, read without composing.

Hydra applies these files through ``optional dataset_loss: ${dataset}_${loss}``
in conf/config.yaml; this module reads the same files for ``lossbench losses``
and the tests (which check that it agrees with Hydra's composition).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from lossbench.conf import CONF_DIR

GROUPS = ("loss", "optim", "trainer")


def split_name(stem: str, datasets: list[str]) -> tuple[str, str] | None:
    """``cifar100_nce_rce`` -> (``cifar100``, ``nce_rce``): the longest dataset name that prefixes it."""
    for dataset in sorted(datasets, key=len, reverse=True):
        if stem.startswith(dataset + "_"):
            return dataset, stem[len(dataset) + 1:]
    return None


def _resolved(path: Path, seen: tuple[Path, ...] = ()) -> tuple[dict[str, Any], list[str]]:
    """A file's settings with the files its defaults list includes merged in first; and what it includes."""
    if path in seen:
        raise ValueError(f"{path.name} includes itself through its defaults list")
    raw = OmegaConf.to_container(OmegaConf.load(path))
    merged: dict[str, Any] = {}
    included = []
    for entry in raw.pop("defaults", []) or []:
        name = entry if isinstance(entry, str) else None
        if name is None or name == "_self_":
            continue
        sub, _ = _resolved(path.parent / f"{name}.yaml", (*seen, path))
        merged = OmegaConf.to_container(OmegaConf.merge(merged, sub))
        included.append(name)
    merged = OmegaConf.to_container(OmegaConf.merge(merged, raw))
    return merged, included


@lru_cache(maxsize=4)
def dataset_settings(conf_dir: Path = CONF_DIR) -> dict[tuple[str, str], dict[str, Any]]:
    """{(dataset, loss): {"loss": {...}, "optim": {...}, "trainer": {...}, "from": [included files]}}.

    Read once per process (the files ship with the package); do not modify the result.
    """
    datasets = [p.stem for p in (conf_dir / "dataset").glob("*.yaml")]
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted((conf_dir / "dataset_loss").glob("*.yaml")):
        key = split_name(path.stem, datasets)
        if key is None:
            raise ValueError(f"conf/dataset_loss/{path.name} does not start with a dataset name")
        values, included = _resolved(path)
        entry = {group: values[group] for group in GROUPS if values.get(group)}
        if included:
            entry["from"] = included
        out[key] = entry
    return out


def describe(entry: dict[str, Any]) -> str:
    """One short line: ``alpha=10, beta=0.1, optim.weight_decay=0, trainer.l1=5e-07``."""
    parts = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in entry.get("loss", {}).items()]
    for group in ("optim", "trainer"):
        parts += [f"{group}.{k}={v:g}" if isinstance(v, float) else f"{group}.{k}={v}"
                  for k, v in entry.get(group, {}).items()]
    return ", ".join(parts)

"""lossbench's config tree (lossbench/conf) and the folders of ``hydra.searchpath``: which config groups
there are and each one's options, read from the files without composing anything.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

CONFIG_MODULE = "lossbench.conf"
# Config groups that specialise a combination (chosen by the defaults list, never by a user):
# hidden from `run --help`, `lossbench list` and the suggestions for a misspelt key.
INTERNAL_GROUPS = ("dataset_loss", "protocol_loss", "protocol_noise")


def search_roots(searchpath: list[str]) -> list:
    """Config folders of ``hydra.searchpath`` entries (``pkg://module`` or ``file://dir``) that exist."""
    roots = []
    for entry in searchpath:
        entry = str(entry)
        try:
            if entry.startswith("pkg://"):
                roots.append(resources.files(entry[len("pkg://"):].strip("/").replace("/", ".")))
            else:
                roots.append(Path(entry.removeprefix("file://")))
        except (ImportError, TypeError, ValueError):
            continue  # Hydra itself reports a search path it cannot use
    return roots


def group_options(group: str, searchpath: list[str] = ()) -> list[str] | None:
    """The YAML option names of config group ``group`` in lossbench's config tree and in the
    ``hydra.searchpath`` folders (None if it is a group in none of them)."""
    found = None
    for root in [resources.files(CONFIG_MODULE), *search_roots(list(searchpath))]:
        folder = root.joinpath(group)
        if folder.is_dir():
            found = (found or set()) | {p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")}
    return None if found is None else sorted(found)

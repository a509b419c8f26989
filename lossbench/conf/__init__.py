"""lossbench's Hydra config tree (a package, so that an installed lossbench carries it)."""

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent

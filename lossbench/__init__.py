"""lossbench: which classification loss, under which label noise and reweighting, works best."""

__version__ = "0.1.0"

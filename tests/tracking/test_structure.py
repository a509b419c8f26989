"""Data flows one way: trackers implement the sink contract and never import the trainer's side."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "lossbench"


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (lazy imports inside functions included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_trackers_depend_on_the_contract_not_on_the_trainer():
    files = sorted((PACKAGE / "tracking").glob("*.py"))
    assert files
    for path in files:
        train = {m for m in imported_modules(path) if m.split(".")[:2] == ["lossbench", "train"]}
        assert not train, f"{path.name} imports {train}"
    assert "lossbench.core.sink" in imported_modules(PACKAGE / "tracking" / "wandb.py")


def test_sink_contract_depends_on_nothing_in_lossbench():
    assert not {m for m in imported_modules(PACKAGE / "core" / "sink.py") if m.startswith("lossbench")}
    from lossbench.core.sink import Sink
    from lossbench.tracking.wandb import WandbSink
    from lossbench.train import sinks

    assert issubclass(WandbSink, Sink) and issubclass(sinks.JsonlSink, Sink)
    assert sinks.Sink is Sink  # the old import path still names the same class

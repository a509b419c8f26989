"""The plug-in API's modules that moved into lossbench/core still import under their old names
(lossbench/__init__.py: MOVED), as the very module at its new place."""

from __future__ import annotations

import importlib
import sys

import pytest

import lossbench


@pytest.mark.parametrize("old, new", sorted(lossbench.MOVED.items()))
def test_an_old_module_name_imports_the_moved_module(monkeypatch, old, new):
    # only lossbench's own finder may answer the old name (an editable install's finder maps names too)
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if "__editable__" not in repr(f)])
    monkeypatch.delitem(sys.modules, old, raising=False)
    moved = importlib.import_module(new)
    assert importlib.import_module(old) is moved
    assert moved.__name__ == new and moved.__spec__.name == new  # the module keeps its own name
    monkeypatch.delitem(sys.modules, old)


def test_the_plug_in_api_imports_from_its_old_paths():
    from lossbench.registry import Registry as OldRegistry
    from lossbench.sink import Sink as OldSink

    from lossbench.core.registry import Registry
    from lossbench.core.sink import Sink

    assert (OldRegistry, OldSink) == (Registry, Sink)


def test_a_name_that_never_was_a_module_is_not_found():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("lossbench.no_such_module")

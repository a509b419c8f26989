"""lossbench: which classification loss, under which label noise and reweighting, works best."""

import sys as _sys

__version__ = "0.1.0"

# The plug-in API's modules before they moved into lossbench/core (a plug-in package may still write
# ``from lossbench.registry import Registry``): the old name imports the module at its new place.
MOVED = {
    "lossbench.registry": "lossbench.core.registry",
    "lossbench.sink": "lossbench.core.sink",
    "lossbench.errors": "lossbench.core.errors",
}


class _MovedModules:
    """An import finder, consulted last, that answers an old module name with the moved module."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name not in MOVED:
            return None
        from importlib.util import spec_from_loader

        return spec_from_loader(name, cls)

    @staticmethod
    def create_module(spec):
        from importlib import import_module

        module = import_module(MOVED[spec.name])
        spec.loader_state = module.__spec__  # the import system sets the old name's spec on it next
        return module

    @staticmethod
    def exec_module(module) -> None:
        """Nothing runs (the module ran under its own name); its own ``__spec__`` goes back on it."""
        module.__spec__ = module.__spec__.loader_state


if not any(getattr(f, "__name__", "") == "_MovedModules" for f in _sys.meta_path):
    _sys.meta_path.append(_MovedModules)

"""Published protocols: the presets of conf/experiment/, their grids, published numbers and claims."""

from lossbench.protocols.catalogue import (
    Cell,
    Claim,
    Protocol,
    ProtocolError,
    compose_preset,
    load_protocol,
    preset_grid,
    preset_names,
)

__all__ = [
    "Cell", "Claim", "Protocol", "ProtocolError", "compose_preset", "load_protocol", "preset_grid",
    "preset_names",
]

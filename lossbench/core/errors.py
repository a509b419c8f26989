"""Errors a user can fix, reported in one line."""


class ConfigError(ValueError):
    """A setting that cannot work; reported in one line before training."""


def config_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    keys = []
    for key in sorted(set(a) | set(b), key=str):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys.extend(config_differences(va, vb, f"{prefix}{key}."))
        elif va != vb:
            keys.append(f"{prefix}{key}")
    return keys

"""What makes two runs the same experiment: the resolved config less the settings that do not change
what a run computes (housekeeping). No torch here: the report reads these definitions too.
"""

from __future__ import annotations

# Settings that do not change what a run computes: a finished run or a checkpoint
# made with other values of these is still the same experiment.
NOT_EXPERIMENT = {"logger": None, "objective": None, "data_dir": None, "verbose": None,
                  "trainer": ("progress", "force", "checkpoint_every", "threads", "save_weights"),
                  "dataset": ("data_dir", "download")}


# Settings added after runs were recorded without them, at the default that computes what their
# absence did: left out of the key at that value, so those runs stay the same experiment.
LATER_DEFAULTS = {"loss": {"reduction": "mean", "min_prob": 0.0, "eps": 0.0}}


def experiment_key(config: dict) -> dict:
    """The resolved config less the settings in NOT_EXPERIMENT (and LATER_DEFAULTS at their default)."""
    key = {}
    for name, value in config.items():
        drop = NOT_EXPERIMENT.get(name, ())
        if drop is None:
            continue
        if isinstance(value, dict):
            later = LATER_DEFAULTS.get(name, {})
            value = {k: v for k, v in value.items()
                     if k not in drop and not (k in later and v == later[k])}
        key[name] = value
    return key


def is_housekeeping(key: str) -> bool:
    """Whether a dotted config key (or an override's key, ``hydra.*`` included) is one of NOT_EXPERIMENT."""
    name, _, rest = key.lstrip("+~").partition(".")
    if name == "hydra":
        return True
    if name not in NOT_EXPERIMENT:
        return False
    drop = NOT_EXPERIMENT[name]
    return drop is None or rest.split(".", 1)[0] in drop

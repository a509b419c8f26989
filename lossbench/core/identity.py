"""What makes two runs the same experiment: the resolved config less the settings that do not change
what a run computes (housekeeping). No torch here: the report reads these definitions too.
"""

from __future__ import annotations

# Settings that do not change what a run computes: a finished run or a checkpoint
# made with other values of these is still the same experiment.
NOT_EXPERIMENT = {"logger": None, "objective": None, "data_dir": None, "verbose": None, "smooth_ece": None,
                  "trainer": ("progress", "force", "checkpoint_every", "threads", "save_weights"),
                  "dataset": ("data_dir", "download")}


# Settings added after runs were recorded without them: a value (or a test of the value and its node)
# that computes what their absence did. Left out of the key then, so those runs and checkpoints stay the
# same experiment.
AS_BEFORE = {
    ("loss", "reduction"): "mean",
    ("loss", "min_prob"): 0.0,
    ("loss", "eps"): 0.0,
    ("dataset", "subset"): None,
    ("dataset", "subset_seed"): lambda value, node: node.get("subset") is None,
    ("trainer", "limit_train_batches"): None,
    ("trainer", "early_stopping"): lambda value, node: not value or value.get("patience") is None,
}


def _as_before(group: str, key: str, value, node: dict) -> bool:
    if (group, key) not in AS_BEFORE:
        return False
    rule = AS_BEFORE[(group, key)]
    return rule(value, node) if callable(rule) else value == rule


def experiment_key(config: dict) -> dict:
    """The resolved config less the settings in NOT_EXPERIMENT (and AS_BEFORE's at their old value)."""
    key = {}
    for name, value in config.items():
        drop = NOT_EXPERIMENT.get(name, ())
        if drop is None:
            continue
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in drop and not _as_before(name, k, v, value)}
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

"""Per-dataset loss settings (conf/dataset_loss): the authors' values, as a run composes them."""

from __future__ import annotations

import json
import math

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from lossbench.conf import CONF_DIR
from lossbench.losses import LOSSES
from lossbench.losses.base import hyperparameter_names
from lossbench.losses.settings import dataset_settings, split_name

DATASET_LOSS = CONF_DIR / "dataset_loss"
DATASETS = sorted(p.stem for p in (CONF_DIR / "dataset").glob("*.yaml"))

# The authors' settings, transcribed from the official configs (PROTOCOLS.md section 2, re-read in
# HanxunH/Active-Passive-Losses configs/, Virusdoll/Active-Negative-Loss config/, hitcszx/ALFs config.py,
# Optimization-AI/ICML2023_LDR experiment.py). Keys: loss hyperparameters, plus "weight_decay" and
# "l1" where the authors ran the loss with its own optimizer settings. CIFAR-10 is every class default.
MNIST = {
    "sce": {"alpha": 0.01, "beta": 1.0},
    "nce": {"scale": 10.0},
    "nfl": {"scale": 1.0, "gamma": 0.5},
    "ngce": {"scale": 10.0, "q": 0.1},
    "nce_rce": {"alpha": 1.0, "beta": 10.0},
    "nce_mae": {"alpha": 1.0, "beta": 10.0},
    "nfl_rce": {"alpha": 1.0, "beta": 10.0},
    "nfl_mae": {"alpha": 1.0, "beta": 10.0},
    "ngce_mae": {"q": 0.1, "alpha": 1.0, "beta": 10.0},
    "ngce_rce": {"q": 0.1, "alpha": 1.0, "beta": 10.0},
    "anl_ce": {"alpha": 1.0, "beta": 1.0, "min_prob": 1e-7, "weight_decay": 0.0, "l1": 1e-6},
    "anl_fl": {"alpha": 1.0, "beta": 1.0, "gamma": 0.5, "min_prob": 1e-7, "weight_decay": 0.0, "l1": 1e-6},
    "agce": {"a": 4.0, "q": 0.2},
    "aul": {"a": 3.0, "q": 0.1},
    "ael": {"a": 3.5},
    "nce_agce": {"alpha": 0.0, "beta": 1.0, "a": 4.0, "q": 0.2},
    "nce_aul": {"alpha": 0.0, "beta": 1.0, "a": 3.0, "q": 0.1},
    "nce_ael": {"alpha": 0.0, "beta": 1.0, "a": 3.5},
    "gce": {"q": 0.7},
}
CIFAR10 = {
    "gce": {"q": 0.7},
    "sce": {"alpha": 0.1, "beta": 1.0},
    "nce": {"scale": 1.0},
    "nfl": {"scale": 10.0, "gamma": 0.5},  # symmetric noise; the APL code uses 1 for asymmetric noise
    "ngce": {"scale": 1.0, "q": 0.1},
    "nce_rce": {"alpha": 1.0, "beta": 1.0},
    "nce_mae": {"alpha": 1.0, "beta": 1.0},
    "nfl_rce": {"alpha": 1.0, "beta": 1.0},
    "nfl_mae": {"alpha": 1.0, "beta": 1.0},
    "ngce_mae": {"q": 0.1, "alpha": 1.0, "beta": 1.0},
    "ngce_rce": {"q": 0.1, "alpha": 1.0, "beta": 1.0},
    "anl_ce": {"alpha": 5.0, "beta": 5.0, "min_prob": 1e-7, "weight_decay": 0.0, "l1": 5e-5},
    "anl_fl": {"alpha": 5.0, "beta": 5.0, "gamma": 0.5, "weight_decay": 0.0, "l1": 5e-5},
    "agce": {"a": 0.6, "q": 0.6},
    "aul": {"a": 5.5, "q": 3.0},
    "ael": {"a": 2.5},
    "nce_agce": {"alpha": 1.0, "beta": 4.0, "a": 6.0, "q": 1.5},
    "nce_aul": {"alpha": 1.0, "beta": 4.0, "a": 6.3, "q": 1.5},
    "nce_ael": {"alpha": 1.0, "beta": 4.0, "a": 5.0},
    "ldr_kl": {"lam": 10.0, "margin": 0.1, "score_transform": "softplus_mean"},
    "aldr_kl": {"lam0": 10.0, "alpha": 2.0, "margin": 0.1, "score_transform": "abs_mean"},
}
CIFAR100 = {
    "gce": {"q": 0.7},
    "sce": {"alpha": 6.0, "beta": 0.1},
    "nce": {"scale": 1.0},
    "nfl": {"scale": 1.0},
    "ngce": {"scale": 1.0, "q": 0.7},
    "nce_rce": {"alpha": 10.0, "beta": 0.1},
    "nfl_rce": {"alpha": 10.0, "beta": 0.1},
    "nce_mae": {"alpha": 10.0, "beta": 1.0},
    "nfl_mae": {"alpha": 10.0, "beta": 1.0},
    "ngce_mae": {"q": 0.7, "alpha": 10.0, "beta": 1.0},
    "ngce_rce": {"q": 0.7, "alpha": 10.0, "beta": 0.1},
    "anl_ce": {"alpha": 10.0, "beta": 1.0, "weight_decay": 0.0, "l1": 5e-7},
    "anl_fl": {"alpha": 10.0, "beta": 1.0, "gamma": 0.5, "weight_decay": 0.0, "l1": 5e-7},
    "agce": {"a": 0.6, "q": 0.6},
    "aul": {"a": 5.5, "q": 3.0},
    "ael": {"a": 2.5},
    "nce_agce": {"alpha": 10.0, "beta": 0.1, "a": 1.8, "q": 3.0},
    "nce_aul": {"alpha": 10.0, "beta": 0.015, "a": 6.0, "q": 3.0},
    "nce_ael": {"alpha": 10.0, "beta": 0.1, "a": 1.5},
    "ldr_kl": {"lam": 10.0, "score_transform": "softplus_mean"},
    "aldr_kl": {"lam0": 10.0, "alpha": 2.0, "score_transform": "softplus_mean"},
}
# lossbench's choice for the datasets no author ran: Fashion-MNIST takes MNIST's settings, SVHN takes
# CIFAR-10's; digits (lossbench's own quick protocol, lr 0.1) keeps the class defaults.
AUTHORS = {"mnist": MNIST, "cifar10": CIFAR10, "cifar100": CIFAR100,
           "fashion_mnist": MNIST, "svhn": CIFAR10}
CASES = [(d, name, v) for d, table in AUTHORS.items() for name, v in table.items()]
DEFAULT_WD, DEFAULT_L1 = 5e-4, 0.0  # conf/optim/sgd.yaml, conf/trainer/default.yaml


def _compose(*overrides: str):
    with initialize_config_module("lossbench.conf", version_base=None):
        return compose("config", overrides=list(overrides))


def _settings_of(dataset: str, name: str) -> tuple[dict, float, float]:
    """(loss config, weight decay, l1) of a run: config.yaml's loss node (loss.reduction), conf/loss, then
    the dataset's file (as Hydra merges them)."""
    loss = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "config.yaml").loss)
    loss.update(OmegaConf.to_container(OmegaConf.load(CONF_DIR / "loss" / f"{name}.yaml")))
    entry = dataset_settings().get((dataset, name), {})
    loss.update(entry.get("loss", {}))
    return (loss, entry.get("optim", {}).get("weight_decay", DEFAULT_WD),
            entry.get("trainer", {}).get("l1", DEFAULT_L1))


def _check(loss: dict, wd: float, l1: float, expected: dict, where: str) -> None:
    for key, value in expected.items():
        got = wd if key == "weight_decay" else l1 if key == "l1" else loss[key]
        if isinstance(value, float):
            assert math.isclose(got, value), (where, key, got)
        else:
            assert got == value, (where, key, got)
    if "weight_decay" not in expected:
        assert wd == DEFAULT_WD and l1 == DEFAULT_L1, where


@pytest.mark.parametrize(("dataset", "name", "expected"), CASES, ids=[f"{d}-{n}" for d, n, _ in CASES])
def test_a_run_gets_the_authors_setting_for_its_dataset(dataset, name, expected):
    _check(*_settings_of(dataset, name), expected, f"{dataset}_{name}")


# Hydra's own composition agrees with the files as read above: one case per dataset and kind of file.
COMPOSED = [("mnist", "nce_rce"), ("mnist", "anl_fl"), ("cifar10", "anl_ce"), ("cifar100", "nce_aul"),
            ("cifar100", "aldr_kl"), ("fashion_mnist", "ngce"), ("fashion_mnist", "anl_ce"),
            ("svhn", "anl_fl"), ("svhn", "nce_rce"), ("cifar10", "nfl")]


@pytest.mark.parametrize(("dataset", "name"), COMPOSED, ids=[f"{d}-{n}" for d, n in COMPOSED])
def test_hydra_composition_applies_the_file(dataset, name):
    cfg = _compose(f"dataset={dataset}", f"loss={name}")
    _check(OmegaConf.to_container(cfg.loss), cfg.optim.weight_decay, cfg.trainer.l1, AUTHORS[dataset][name],
           f"{dataset}_{name} composed")
    loss, wd, l1 = _settings_of(dataset, name)
    assert OmegaConf.to_container(cfg.loss) == loss and cfg.optim.weight_decay == wd and cfg.trainer.l1 == l1


def test_an_explicit_override_wins_over_the_dataset_setting():
    cfg = _compose("dataset=mnist", "loss=nce_rce", "loss.beta=3.0", "optim.weight_decay=0.1")
    assert cfg.loss.beta == 3.0 and cfg.loss.alpha == 1.0 and cfg.optim.weight_decay == 0.1
    cfg = _compose("dataset=mnist", "loss=anl_ce", "trainer.l1=0.0", "optim.weight_decay=1e-3")
    assert cfg.trainer.l1 == 0.0 and cfg.optim.weight_decay == 1e-3 and cfg.loss.beta == 1.0


def test_datasets_without_a_file_get_the_class_defaults():
    assert ("synthetic", "nce_rce") not in dataset_settings()
    assert _compose("dataset=synthetic", "loss=nce_rce").loss.beta == 1.0


@pytest.mark.parametrize("path", sorted(DATASET_LOSS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_file_names_a_dataset_and_a_loss_and_sets_only_what_they_take(path):
    assert path.read_text().startswith("# @package _global_\n"), path.name
    key = split_name(path.stem, DATASETS)
    assert key is not None, f"{path.name}: no dataset of that name"
    dataset, name = key
    assert name in LOSSES, f"{path.name}: no loss '{name}'"
    raw = OmegaConf.to_container(OmegaConf.load(path))
    if "defaults" in raw:  # an inheriting file (fashion_mnist, svhn) only includes another
        assert set(raw) == {"defaults"} and len(raw["defaults"]) == 1, path.name
        assert split_name(raw["defaults"][0], DATASETS)[1] == name, path.name  # the same loss
        assert "defaults" not in OmegaConf.load(DATASET_LOSS / f"{raw['defaults'][0]}.yaml")  # one level
    assert set(raw) <= {"loss", "optim", "trainer", "defaults"}, path.name
    assert set(raw.get("loss", {})) <= set(hyperparameter_names(LOSSES.get(name))), path.name
    assert set(raw.get("optim", {})) <= {"weight_decay"} and set(raw.get("trainer", {})) <= {"l1"}, path.name
    loss, _, _ = _settings_of(dataset, name)
    LOSSES.get(name)(**{k: v for k, v in loss.items() if k not in ("_target_", "reduction")},
                     **({"num_train": 8} if LOSSES.get(name).needs_index else {}))


def test_inheriting_datasets_are_the_documented_ones():
    settings = dataset_settings()
    parents = {d: {e["from"][0].split("_")[0] for (dd, _), e in settings.items() if dd == d and "from" in e}
               for d in ("fashion_mnist", "svhn")}
    assert parents == {"fashion_mnist": {"mnist"}, "svhn": {"cifar10"}}
    mnist = {n for d, n in settings if d == "mnist"}
    assert {n for d, n in settings if d == "fashion_mnist"} == mnist
    assert not {n for d, n in settings if d == "digits"}  # digits keeps the class defaults


def test_mnist_nce_rce_run_trains_with_beta_10_and_its_summary_says_so(shared_data, tmp_path, monkeypatch):
    """`lossbench run dataset=mnist loss=nce_rce`: one short epoch, in-process."""
    from lossbench.cli import main

    monkeypatch.chdir(tmp_path)
    main(["run", "dataset=mnist", f"data_dir={shared_data}", "loss=nce_rce", "trainer.epochs=1",
          "model.hidden=[16]", "trainer.batch_size=512", "trainer.checkpoint_every=0",
          "trainer.progress=none", f"hydra.run.dir={tmp_path / 'run'}"])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["loss_params"] == {"alpha": 1.0, "beta": 10.0, "A": -4.0}
    assert summary["config"]["loss"]["beta"] == 10.0


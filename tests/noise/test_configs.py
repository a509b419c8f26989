"""conf/noise <-> noise registry: every YAML builds a registered model, every model has a YAML."""

import re
from importlib import resources

import pytest
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from lossbench.noise import NOISE_MODELS, NoiseModel

NAMES = sorted(p.name[:-5] for p in resources.files("lossbench.conf").joinpath("noise").iterdir()
               if p.name.endswith(".yaml"))
# the generic entries take their setting on the command line
GENERIC = {
    "sym": ["noise.rate=0.3"],
    "asym": ["noise.rate=0.3"],
    "pair": ["noise.rate=0.3"],
    "idn": ["noise.rate=0.3"],
    "custom": ["noise.matrix=[[0.9,0.1],[0.2,0.8]]"],
    "swap": ["noise.rate=0.3"],
}
EXPECTED = {
    "clean", "custom", "cifar100n",
    *(f"cifar10n_{k}" for k in ("aggre", "rand1", "rand2", "rand3", "worst")),
    "sym", "sym20", "sym40", "sym50", "sym60", "sym80",
    "asym", "asym10", "asym20", "asym30", "asym40",
    "pair", "pair20", "pair45", "idn", "idn20", "idn40",
    "uniform30", "uniform60", "uniform90", "swap", "swap10", "swap30", "swap50",  # the LDR code's noise
}


def compose_noise(name: str, *overrides: str):
    return compose(config_name="config", overrides=[f"noise={name}", "data_dir=/data", *overrides])


@pytest.fixture(scope="module", autouse=True)
def hydra_config():
    with initialize_config_module(config_module="lossbench.conf", version_base="1.3"):
        yield


@pytest.fixture(scope="module")
def models(hydra_config):
    return {name: instantiate(compose_noise(name, *GENERIC.get(name, [])).noise) for name in NAMES}


def test_the_issue_names_exist():
    assert EXPECTED <= set(NAMES)


def test_every_yaml_builds_a_registered_model(models):
    for name, model in models.items():
        assert isinstance(model, NoiseModel), name
        assert type(model).registry_name in NOISE_MODELS, name


def test_every_registered_model_has_a_yaml(models):
    used = {type(m) for m in models.values()}
    unused = [n for n, cls in NOISE_MODELS.items() if cls not in used]
    assert not unused, f"registered noise models with no conf/noise YAML: {unused}"


def test_named_presets_carry_their_rate(models):
    for name, model in models.items():
        match = re.fullmatch(r"(sym|asym|pair|idn|uniform|swap)(\d\d)", name)
        if match:
            assert model.rate == pytest.approx(int(match.group(2)) / 100), name


def test_defaults_are_the_documented_conventions(models):
    assert all(models[n].convention == "flip" for n in NAMES if n.startswith("sym"))
    assert all(models[n].count == "binomial" for n in NAMES if n.startswith(("sym", "asym", "pair", "swap")))
    assert all(models[n].convention == "uniform" for n in NAMES if n.startswith("uniform"))
    assert models["swap30"].pairs == "auto"
    assert models["asym40"].grouping == "superclass" and models["asym40"].flip_map == "auto"
    assert models["idn40"].std == 0.1
    assert str(models["cifar10n_worst"].path) == "/data/cifar-n/CIFAR-10_human.pt"
    assert models["cifar10n_worst"].labels == "worst" and models["cifar100n"].dataset == "cifar100"


def test_generic_entries_need_their_setting():
    with pytest.raises(Exception, match="rate"):
        instantiate(compose_noise("sym").noise)
    with pytest.raises(Exception, match="matrix"):
        instantiate(compose_noise("custom").noise)


def test_rate_override(models):
    model = instantiate(compose_noise("sym60", "noise.rate=0.35", "noise.convention=uniform").noise)
    assert model.rate == 0.35 and model.convention == "uniform"


def test_noise_seed_defaults_to_the_seed_and_can_be_set_alone():
    cfg = compose_noise("sym60", "seed=5")
    assert cfg.noise_seed == 5
    cfg = compose_noise("sym60", "seed=5", "noise_seed=9")
    assert cfg.seed == 5 and cfg.noise_seed == 9

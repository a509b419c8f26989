"""Generic tests that walk the loss registry: every loss gets them without new test code."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest
import torch
from hydra.utils import get_class
from omegaconf import OmegaConf

from lossbench.conf import CONF_DIR
from lossbench.losses import FAMILIES, LOSSES, Loss
from lossbench.losses.base import hyperparameter_names

LOSS_CONF = CONF_DIR / "loss"
NAMES = LOSSES.names()
YAMLS = sorted(p.stem for p in LOSS_CONF.glob("*.yaml"))


def _inputs(batch: int = 6, classes: int = 5, dtype=torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(batch, classes, generator=g)).to(dtype)
    target = torch.randint(classes, (batch,), generator=g)
    features = torch.randn(batch, 7, generator=g).to(dtype)
    return logits, target, features


def _index(n: int) -> torch.Tensor:
    """Training-set positions for a batch of n (losses with per-sample state read them)."""
    return torch.arange(n)


@pytest.fixture
def make_loss(make_loss):
    """Losses are built for the 5 classes of these inputs (a learned link's size depends on C)."""
    return lambda name, num_classes=5, **overrides: make_loss(name, num_classes=num_classes, **overrides)


def _shaped(loss: Loss, logits: torch.Tensor, target: torch.Tensor, *rest: torch.Tensor) -> tuple:
    """The inputs as the loss's level needs them: a set-level loss gets whole sets, labelled by its
    own sampler (on a pool of 4 samples per class); other losses get them unchanged."""
    if loss.level != "set":
        return (logits, target, *rest)
    pool = torch.arange(logits.shape[1]).repeat(4)
    rows = len(target) // loss.set_size * loss.set_size
    batch = loss.epoch_batches(pool, rows, torch.Generator().manual_seed(0))[0]
    return (logits[:rows], pool[batch], *(r[:rows] for r in rest))


def _values_shape(loss: Loss, batch: int) -> tuple[int, ...]:
    """[B] per sample, [S] per set, [] for a batch-level loss."""
    return {"sample": (batch,), "set": (batch // getattr(loss, "set_size", 1),), "batch": ()}[loss.level]


def test_every_loss_has_a_yaml_and_every_yaml_a_loss():
    assert YAMLS == NAMES


@pytest.mark.parametrize("name", YAMLS)
def test_yaml_targets_the_class_registered_under_its_name(name):
    cfg = OmegaConf.load(LOSS_CONF / f"{name}.yaml")
    cls = get_class(cfg._target_)
    assert cls is LOSSES.get(name)
    assert cls.registry_name == name


@pytest.mark.parametrize("name", YAMLS)
def test_yaml_values_are_the_class_defaults(name):
    cfg = OmegaConf.to_container(OmegaConf.load(LOSS_CONF / f"{name}.yaml"))
    cls = LOSSES.get(name)
    all_params = inspect.signature(cls.__init__).parameters
    params = {k: all_params[k] for k in hyperparameter_names(cls)}
    keys = {k for k in cfg if k != "_target_"}
    assert keys == set(params), f"{name}: YAML keys {sorted(keys)} vs constructor {sorted(params)}"
    for key in keys:
        default = params[key].default
        assert cfg[key] == default, f"{name}.{key}: YAML {cfg[key]!r} != default {default!r}"
        assert type(cfg[key]) is type(default), f"{name}.{key}: YAML type differs from the default's"


@pytest.mark.parametrize("name", NAMES)
def test_class_metadata_and_docstring(name):
    cls = LOSSES.get(name)
    assert issubclass(cls, Loss)
    assert cls.family in FAMILIES
    assert cls.paper
    doc = inspect.getdoc(cls) or ""
    # The reference: a year, and a venue or an archive.
    assert re.search(r"\b(19|20)\d\d\b", doc), f"{name}: docstring names no year"
    assert "=" in doc or ":" in doc.splitlines()[0], f"{name}: docstring gives no formula"


@pytest.mark.parametrize("name", NAMES)
def test_per_sample_output(make_loss, name):
    loss = make_loss(name)
    logits, target, features = _shaped(loss, *_inputs())
    out = loss(logits, target, features, _index(6))
    assert out.shape == _values_shape(loss, 6)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_float64_logits_stay_float64(make_loss, name):
    """Double-precision logits are computed in double (formula checks); the value agrees with float32's."""
    loss64, loss32 = make_loss(name), make_loss(name)
    logits, target, features = _shaped(loss64, *_inputs(dtype=torch.float64))
    out = loss64(logits, target, features, _index(6))
    assert out.dtype == torch.float64
    ref = loss32(logits.float(), target, features.float(), _index(6))
    torch.testing.assert_close(out.float(), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_hyperparameters_record_what_the_instance_uses(make_loss, name):
    """loss.hyperparameters() (summary.json's loss_params) holds every conf/loss key and rebuilds the loss."""
    cfg = OmegaConf.to_container(OmegaConf.load(LOSS_CONF / f"{name}.yaml"))
    loss = make_loss(name)
    hp = loss.hyperparameters()
    assert set(hp) == {k for k in cfg if k != "_target_"}
    for key, value in cfg.items():
        if key != "_target_" and value is not None and not isinstance(value, str):
            assert hp[key] == value, (name, key)
    rebuilt = LOSSES.get(name)(**hp, **{k: v for k, v in (("num_train", 64), ("num_classes", 5))
                                        if k in inspect.signature(LOSSES.get(name).__init__).parameters
                                        and (loss.needs_index or k == "num_classes")})
    assert rebuilt.hyperparameters() == hp
    json.dumps(hp)  # plain data for summary.json


EXTREME = torch.tensor([
    [1e4, -1e4, -1e4, 0.0, 1e4],    # label tied at the top
    [-1e4, -1e4, -1e4, -1e4, -1e4],  # all equal, very negative
    [1e4, 1e4, 1e4, 1e4, 1e4],       # all equal, very positive
    [1e4, -1e4, -1e4, -1e4, -1e4],   # label alone at the top: p_y == 1 in float32
    [-1e4, 1e4, -1e4, -1e4, -1e4],   # label at the bottom: p_y == 0 in float32
    [0.0, 0.0, 0.0, 0.0, 0.0],       # all zero
    [-1e4, 1e4, 0.0, 1e4, -1e4],     # label at the bottom, two tied tops
])
EXTREME_TARGET = torch.tensor([0, 1, 2, 0, 0, 3, 0])


@pytest.mark.parametrize("name", NAMES)
def test_finite_gradients_for_extreme_logits(make_loss, name):
    loss = make_loss(name)
    for sign in (1.0, -1.0):
        logits, target = _shaped(loss, sign * EXTREME, EXTREME_TARGET)
        logits = logits.clone().requires_grad_(True)
        features = (1e4 * torch.randn(len(target), 7)).requires_grad_(True)
        out = loss(logits, target, features, _index(len(target)))
        out.sum().backward()
        assert torch.isfinite(out).all(), f"{name}: loss {out}"
        assert torch.isfinite(logits.grad).all(), f"{name}: grad {logits.grad}"
        if loss.needs_features:
            assert torch.isfinite(features.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_finite_gradients_under_bf16_autocast(make_loss, name):
    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 5)
    body = torch.nn.Linear(8, 7)
    x = 10 * torch.randn(16, 8)
    loss = make_loss(name)
    x, target = _shaped(loss, x, torch.randint(5, (16,)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, features = layer(x), body(x)
        assert logits.dtype == torch.bfloat16
        out = loss(logits, target, features, _index(len(target)))
    out.mean().backward()
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    for p in layer.parameters():
        assert torch.isfinite(p.grad).all()
    if loss.needs_features:
        for p in body.parameters():
            assert torch.isfinite(p.grad).all()
    # Saturated bf16 logits too.
    big = (1e4 * torch.randn(len(target), 5)).bfloat16().requires_grad_(True)
    out = loss(big, target, torch.randn(len(target), 7).bfloat16(), _index(len(target)))
    out.sum().backward()
    assert torch.isfinite(big.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_analytic_gradient_matches_finite_differences(make_loss, name):
    """The stable rewritings (log(1 - p), tangent extensions) keep exact gradients.

    Losses with per-sample state are checked in eval mode, where their state is read, not written
    (ALDR-KL's lambda and TGCE's pruning choices are held fixed in the gradient).
    """
    loss = make_loss(name, num_classes=4).eval()
    logits, target, features = _shaped(loss, *_inputs(batch=3, classes=4, dtype=torch.float64, seed=1))
    args = (features,) if loss.needs_features else ()
    kwargs = {"index": _index(3)} if loss.needs_index else {}
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: loss.compute(z, target, *args, **kwargs), (logits,), eps=1e-6,
                                    atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_batch_independent(make_loss, name):
    """A sample's loss does not depend on the rest of the batch (bias_loss's scaling aside).

    Two fresh instances agree (a stateful loss starts from the same state); in eval mode the state is
    only read, so repeated and per-sample calls see the same state.
    """
    logits, target, features = _shaped(make_loss(name), *_inputs())
    index = _index(6)
    full = make_loss(name)(logits, target, features, index)
    assert torch.equal(full, make_loss(name)(logits, target, features, index))
    if name == "bias_loss" or make_loss(name).level != "sample":  # sets and batches are scored whole
        return
    loss = make_loss(name).eval()
    assert torch.equal(loss(logits, target, features, index), loss(logits, target, features, index))
    for i in range(len(target)):
        one = loss(logits[i : i + 1], target[i : i + 1], features[i : i + 1], index[i : i + 1])
        torch.testing.assert_close(one[0], full[i], rtol=1e-5, atol=1e-6)


def test_input_checks():
    loss = LOSSES.get("ce")()
    with pytest.raises(ValueError, match="logits must be"):
        loss(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="target must be"):
        loss(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(TypeError, match="integer class indices"):
        loss(torch.zeros(3, 4), torch.zeros(3))
    with pytest.raises(ValueError, match="needs the model's features"):
        LOSSES.get("bias_loss")()(torch.zeros(3, 4), torch.zeros(3, dtype=torch.long))


BAD_HYPERPARAMETERS = [
    ("comp_sum", {"tau": -0.5}, "tau >= 0"),
    ("comp_gce", {"tau": 2.0}, r"tau in \(1, 2\)"),
    ("gce", {"q": 0.0}, r"q in \(0, 1\]"),
    ("gce", {"q": 1.5}, r"q in \(0, 1\]"),
    ("tgce", {"k": 1.0}, r"k in \(0, 1\)"),
    ("tgce", {"warmup_fraction": 2.0}, "warmup_fraction"),
    ("mae", {"scale": 0.0}, "scale > 0"),
    ("rce", {"A": 4.0}, "A < 0"),
    ("sce", {"A": 0.0}, "A < 0"),
    ("sce", {"alpha": -1.0}, "alpha >= 0"),
    ("bootstrap_soft", {"beta": 1.5}, r"beta in \[0, 1\]"),
    ("bootstrap_hard", {"beta": -0.1}, r"beta in \[0, 1\]"),
    ("taylor_ce", {"t": 0}, "t >= 1"),
    ("taylor_ce", {"t": 2.5}, "integer order"),
    ("gjs", {"pi_1": 1.0}, r"pi_1 in \(0, 1\)"),
    ("agce", {"a": 0.0}, "a > 0"),
    ("aul", {"a": 1.0}, "a > 1"),
    ("nfl", {"gamma": -1.0}, "gamma >= 0"),
    ("ngce", {"q": 0.0}, r"q in \(0, 1\]"),
    ("nmae", {"scale": -1.0}, "scale > 0"),
    ("nce_rce", {"alpha": 0.0, "beta": 0.0}, "not both 0"),
    ("nce_rce", {"A": 1.0}, "A < 0"),
    ("nce_mae", {"mae_scale": 0.0}, "mae_scale > 0"),
    ("nfl_rce", {"gamma": -0.5}, "gamma >= 0"),
    ("nfl_mae", {"beta": -1.0}, "beta >= 0"),
    ("anl_ce", {"min_prob": 0.0}, r"min_prob in \(0, 1\)"),
    ("anl_fl", {"min_prob": 1.0}, r"min_prob in \(0, 1\)"),
    ("ldr_kl", {"lam": 0.0}, "lam > 0"),
    ("ldr_kl", {"score_transform": "softmax"}, "known: softplus_mean, abs_mean, none"),
    ("ldr_kl", {"margin": -0.1}, "margin >= 0"),
    ("aldr_kl", {"alpha": 1.0}, "alpha > 1"),
    ("aldr_kl", {"lam0": -1.0}, "lam0 > 0"),
    ("aldr_kl", {"q_floor": 1.0}, r"q_floor in \[0, 1\)"),
    ("aldr_kl", {"score_transform": "tanh"}, "known: softplus_mean, abs_mean, none"),
    ("aldr_kl", {}, "needs num_train"),
    ("tgce", {"schedule": "epochs"}, "known: batch, epoch"),
    ("tgce", {"prune_every": 0}, "prune_every >= 1"),
    ("tgce", {"schedule": "epoch"}, "needs num_train"),
    ("ael", {"a": -1.0}, "a > 0"),
    ("nce_agce", {"q": 0.0}, "a > 0 and q > 0"),
    ("nce_agce", {"alpha": 0.0, "beta": 0.0}, "not both 0"),
    ("nce_aul", {"a": 0.5}, "a > 1"),
    ("nce_ael", {"a": 0.0}, "a > 0"),
    ("ngce_mae", {"q": 1.5}, r"q in \(0, 1\]"),
    ("ngce_mae", {"mae_scale": 0.0}, "mae_scale > 0"),
    ("ngce_rce", {"A": "kode"}, "known: paper"),
    ("ngce_rce", {"min_prob": 1.0}, r"min_prob in \[0, 1\)"),
    ("nce", {"scale": 0.0}, "scale > 0"),
    ("nfl", {"scale": -1.0}, "scale > 0"),
    ("ngce", {"scale": 0.0}, "scale > 0"),
    ("ngce", {"min_prob": -0.1}, r"min_prob in \[0, 1\)"),
    ("gce", {"min_prob": 1.0}, r"min_prob in \[0, 1\)"),
    ("mse", {"class_reduction": "max"}, "known: sum, mean"),
    ("rce", {"A": "kode"}, "unknown rce A 'kode'; known: paper"),
    ("comp_sum", {"guard": 0.5}, "guard > 1"),
    ("sum_exp", {"guard": 1.0}, "guard > 1"),
    ("logit_clip", {"delta": 0.0}, "delta > 0"),
    ("logit_clip", {"p": 0.5}, "p >= 1"),
    ("logit_clip", {"convention": "both"}, "known: paper, code"),
    ("logit_clip", {"inner": "fcoal"}, "unknown logit_clip inner loss 'fcoal'; known: .*focal"),
    ("logit_clip", {"inner": "logit_clip"}, "cannot wrap itself"),
    ("logit_clip", {"inner": "gce", "inner_kwargs": {"gamma": 2.0}}, "inner_kwargs do not fit loss 'gce'"),
    ("logit_clip", {"inner": "gce", "inner_kwargs": {"q": 3.0}}, r"q in \(0, 1\]"),
    ("focal", {"gamma": -1.0}, "gamma >= 0"),
    ("flsd53", {"threshold": 1.0}, r"threshold in \(0, 1\)"),
    ("flsd53", {"gamma_below": -5.0}, "gammas >= 0"),
    ("label_smoothing", {"epsilon": 1.5}, r"epsilon in \[0, 1\]"),
    ("nls", {"epsilon": 0.1}, "epsilon <= 0"),
    ("nls", {"wa": -1.0}, "wa >= 0"),
    ("nls", {"wa": 0.0, "wb": 0.0}, "not both 0"),
    ("poly1", {"epsilon": -2.0}, "epsilon >= -1"),
    ("z_loss", {"a": 0.0}, "a > 0"),
    ("z_loss_reg", {"lam": -1.0}, "lam >= 0"),
    ("encouraging", {"log_end": 0.0}, r"log_end in \(0, 1\]"),
    ("encouraging", {"bonus_clamp": 1.0}, r"bonus_clamp in \[0, 1\)"),
    ("bias_loss", {"beta": 1.0}, "beta < 1"),
    ("bias_loss", {"normalisation": "batch"}, "known: local, global"),
    ("bias_loss", {"weight_form": "both"}, "known: paper, code_2021"),
    ("bias_loss", {"weight_form": "code_2021", "alpha": 0.0}, "alpha > 0"),
    ("bias_loss", {"alpha": -1.0}, "alpha >= 0"),
    ("rescaled_square", {"M": 0.0}, "M > 0"),
    ("logit_norm", {"t": 0.0}, "t > 0"),
    ("oko", {"k": 0}, "k >= 1"),
    ("oko", {"targets": "smooth"}, "known: hard, soft"),
    ("oko", {"sets_per_epoch": 0}, "sets_per_epoch >= 1"),
    ("anyloss", {"metric": "auc"}, "known: f_beta, gmean, balanced_accuracy"),
    ("anyloss", {"average": "micro"}, "known: auto, binary, macro"),
    ("anyloss", {"L": 0.0}, "L > 0 or .auto."),
    ("anyloss", {"threshold": 1.0}, r"threshold in \(0, 1\)"),
    ("anyloss", {"average": "binary", "num_classes": 10}, "two classes"),
    ("legendretron", {"num_classes": 10, "hidden": 3}, "even hidden width"),
    ("legendretron", {"num_classes": 10, "depth": 0}, "depth >= 1"),
    ("legendretron", {"num_classes": 10, "blocks": 0}, "blocks >= 1"),
    ("legendretron", {"num_classes": 10, "actnorm_init": "zero"}, "known: identity, data"),
    ("legendretron", {"num_classes": 10, "lr": 0.0}, "lr > 0"),
    ("legendretron", {"num_classes": 10, "weight_decay": -1.0}, "weight_decay >= 0"),
    ("legendretron", {}, "needs num_classes"),
    ("cce", {"inner": "label_smoothing"}, "not a function of p_y alone"),
    ("cce", {"backend": "triton"}, "known: chunked, cce, torch_compile"),
    ("cce", {"chunk": 0}, "chunk >= 1"),
    ("phuber_ce", {"tau": 1.0}, "tau > 1"),
    ("phuber_gce", {"tau": 0.5}, "tau > 1"),
    ("phuber_gce", {"q": 0.0}, r"q in \(0, 1\)"),
    ("ce_clip", {"max_norm": -1.0}, "max_norm > 0"),
    ("cce", {"inner": "gce", "inner_kwargs": {"gamma": 2.0}}, "inner_kwargs do not fit loss 'gce'"),
]


@pytest.mark.parametrize(("name", "kwargs", "match"), BAD_HYPERPARAMETERS)
def test_bad_hyperparameters_raise_value_error(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        LOSSES.get(name)(**kwargs)


def test_every_loss_with_hyperparameters_has_a_failure_case():
    tested = {name for name, _, _ in BAD_HYPERPARAMETERS}
    with_params = {
        name for name, cls in LOSSES.items()
        if any(k != "self" for k in inspect.signature(cls.__init__).parameters
               if inspect.signature(cls.__init__).parameters[k].kind
               is inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }
    assert with_params <= tested, f"no ValueError case for {sorted(with_params - tested)}"


def test_losses_command_lists_every_loss_with_family_hyperparameters_and_dataset_values(monkeypatch, capsys):
    from lossbench.cli import main

    monkeypatch.setenv("COLUMNS", "400")
    main(["losses"])
    out = capsys.readouterr().out
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in re.split(r"[│|]", line)][1:-1]
        if len(cells) == 5 and cells[0] in LOSSES:
            rows[cells[0]] = cells
    families = {name: cells[1] for name, cells in rows.items()}
    assert families == {name: cls.family for name, cls in LOSSES.items()}
    assert rows["nce_rce"][3] == "alpha=1.0, beta=1.0, A=paper"
    assert rows["nce_rce"][4] == ("cifar100: alpha=10, beta=0.1; "
                                  "fashion_mnist, mnist: alpha=1, beta=10")
    assert "trainer.l1=5e-05" in rows["anl_ce"][4] and "optim.weight_decay=0" in rows["anl_ce"][4]
    assert rows["ce"][3] == "" and rows["gce"][4] == ""


def test_every_loss_has_a_hand_worked_test():
    """Each loss is named in a family test file (where the paper's formula is checked on numbers)."""
    here = Path(__file__).parent
    text = "".join(p.read_text() for p in here.glob("test_*.py")
                   if p.name not in ("test_catalogue.py", "test_end_to_end.py"))
    missing = [name for name in NAMES if f'"{name}"' not in text]
    assert not missing, f"no numeric test names {missing}"

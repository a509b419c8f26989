"""Adversarial training: the terms on concrete numbers, robustness gain, resume, registries, refusals."""

from __future__ import annotations

import math
from importlib import resources

import pytest
import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf
from torch import nn

from lossbench.adversarial import training
from lossbench.adversarial.attacks import ATTACKS, PGD, kl_rows, score_distance
from lossbench.adversarial.evaluation import RobustEvaluation
from lossbench.adversarial.training import ADVERSARIAL, PGDAT, TRADES, AdvBatch, AdvCompSum, NoAdversarial
from lossbench.data.transforms import BatchTransform
from lossbench.losses.comp_sum import CompSum, CrossEntropy
from lossbench.reweight.base import Reweighter
from lossbench.train.objective import Objective
from lossbench.train.sinks import Sink

CONF = resources.files("lossbench.conf")


class _Features:
    """A stand-in split for BatchTransform: float features, no normalization, no augmentation."""

    augment = None
    mean = None
    x_train = torch.zeros(1)


def _identity_batch(x, target, loss=None):
    """An AdvBatch whose model is the 2x2 identity: logits = x."""
    model = nn.Linear(2, 2, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.eye(2, dtype=torch.float64))
    objective = Objective(loss or CrossEntropy(), Reweighter(), BatchTransform(_Features()))
    return AdvBatch(model=model, x_raw=x, target=target, transform=objective.transform,
                    forward=lambda z: objective.forward(model, z),
                    loss_of=lambda lg, f: objective.per_sample(lg, target, f, torch.arange(len(target))))


@pytest.fixture
def fixed_adversary(monkeypatch):
    """PGD replaced by a fixed x' = 0 (the terms are then checked on numbers worked by hand)."""
    monkeypatch.setattr(training, "pgd", lambda objective, x, *a, **k: torch.zeros_like(x))


def test_kl_and_score_distance_by_hand():
    # p = softmax([1, 0]) = [0.731059, 0.268941], q = [0.5, 0.5]:
    # KL = 0.731059 ln(1.462117) + 0.268941 ln(0.537883) = 0.277718 - 0.166774 = 0.110944
    p, q = torch.tensor([[1.0, 0.0]], dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64)
    assert float(kl_rows(p, q)[0]) == pytest.approx(0.110944, abs=1e-6)
    assert float(kl_rows(p, p)[0]) == pytest.approx(0.0, abs=1e-7)
    # ||[3, 0] - [0, 4]||_2 = 5
    d = score_distance(torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 4.0]]))
    assert float(d[0]) == pytest.approx(5.0)


def test_trades_term_equals_its_formula(fixed_adversary):
    # logits(x) = [1, 0], logits(x') = [0, 0], y = 0:
    # CE = -ln 0.731059 = 0.313262; TRADES = 0.313262 + 6 * 0.110944 = 0.978926
    method = TRADES(beta=6.0, eps=0.5, steps=1, step_size=0.1)
    batch = _identity_batch(torch.tensor([[1.0, 0.0]], dtype=torch.float64), torch.tensor([0]))
    per_sample, logits = method.per_sample(batch)
    assert float(per_sample[0].detach()) == pytest.approx(0.978926, abs=1e-5)
    assert logits.tolist() == [[1.0, 0.0]]  # statistics are taken on the clean logits


def test_trades_and_pgd_at_use_the_predictive_distribution_of_a_link(fixed_adversary):
    # a link that doubles the logits: p(x) = softmax([2, 0]) = [0.880797, 0.119203], p(x') = [0.5, 0.5]
    # KL = 0.880797 ln(1.761594) + 0.119203 ln(0.238406) = 0.498724 - 0.170911 = 0.327813;
    # the natural term is loss_of on the model's own logits (CE of [1, 0] = 0.313262)
    batch = _identity_batch(torch.tensor([[1.0, 0.0]], dtype=torch.float64), torch.tensor([0]))
    batch.link = lambda z: 2 * z
    per_sample, _ = TRADES(beta=6.0, eps=0.5, steps=1, step_size=0.1).per_sample(batch)
    assert float(per_sample[0].detach()) == pytest.approx(0.313262 + 6 * 0.327813, abs=1e-5)
    seen = []
    monkey = training.pgd
    try:  # PGD-AT's inner cross-entropy is of link(logits): record the objective's value at x
        training.pgd = lambda objective, x, *a, **k: (seen.append(objective(x)), torch.zeros_like(x))[1]
        PGDAT(eps=0.5, steps=1, step_size=0.1).per_sample(batch)
    finally:
        training.pgd = monkey
    # CE of link([1, 0]) = [2, 0] at y = 0: -ln 0.880797 = 0.126928
    assert float(seen[0][0].detach()) == pytest.approx(0.126928, abs=1e-5)


@pytest.mark.parametrize("rho,expected", [
    # comp_sum tau 0.5: Phi = 2 (sqrt(1 / p_y) - 1).
    # rho 1: p_y = 0.731059 -> 0.339126; plus nu * ||[1,0]|| = 2
    (1.0, 0.339126 + 2.0),
    # rho 2: logits / 2 = [0.5, 0], p_y = 0.622459 -> 2 (1.267490 - 1) = 0.534981;
    # the distance is of h, not h / rho
    (2.0, 0.534981 + 2.0),
])
def test_adv_comp_sum_term_equals_its_formula(fixed_adversary, rho, expected):
    method = AdvCompSum(nu=2.0, rho=rho, eps=0.5, steps=1, step_size=0.1)
    x = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    batch = _identity_batch(x, torch.tensor([0]), CompSum(tau=0.5))
    per_sample, _ = method.per_sample(batch)
    assert float(per_sample[0].detach()) == pytest.approx(expected, abs=1e-5)


def test_pgd_at_trains_on_the_adversarial_logits(fixed_adversary):
    # x' = [0, 0]: logits [0, 0], CE = ln 2
    batch = _identity_batch(torch.tensor([[1.0, 0.0]], dtype=torch.float64), torch.tensor([0]))
    per_sample, logits = PGDAT(eps=0.5, steps=1, step_size=0.1).per_sample(batch)
    assert float(per_sample[0].detach()) == pytest.approx(math.log(2))
    assert logits.tolist() == [[0.0, 0.0]]


def test_trades_attack_increases_the_kl():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    x = torch.rand(6, 8, dtype=torch.float64)
    clean = model(x).detach()
    method = TRADES(eps=0.2, steps=10)
    method.eps, method.step_size = 0.2, 0.05
    batch = AdvBatch(model=model, x_raw=x, target=torch.zeros(6, dtype=torch.long),
                     transform=BatchTransform(_Features()), forward=lambda z: (model(z), None),
                     loss_of=lambda lg, f: lg.sum(1), attack_generator=torch.Generator().manual_seed(0))
    x_adv = method.attack(batch, x, lambda xa: kl_rows(clean, model(xa)))
    with torch.no_grad():
        attacked, nudged = kl_rows(clean, model(x_adv)).mean(), kl_rows(clean, model(x + 0.001)).mean()
    assert attacked.item() > 10 * nudged.item()


def test_none_is_standard_training_bit_for_bit(fit_digits):
    _, reference, _ = fit_digits(adversarial=None, epochs=2)
    _, hooked, _ = fit_digits(adversarial=NoAdversarial(), epochs=2)
    assert hooked == reference


def test_pgd_at_raises_robust_accuracy_over_standard_training(fit_digits, digits_split):
    robust = RobustEvaluation(PGD(eps=0.1, steps=10), size=None, every=4)
    std_model, std_hist, trainer = fit_digits(adversarial=None, epochs=8, robust=robust)
    at_model, at_hist, _ = fit_digits(adversarial=PGDAT(eps=0.1, steps=5), epochs=8, robust=robust)
    transform = BatchTransform(digits_split)
    std = robust.evaluate(std_model, digits_split, transform)
    at = robust.evaluate(at_model, digits_split, transform)
    assert std["test_robust_acc"] < std["test_robust_subset_clean_acc"] - 0.2  # the attack bites
    assert at["test_robust_acc"] > std["test_robust_acc"] + 0.15
    assert at["test_robust_subset_clean_acc"] > 0.85
    # metrics.jsonl gets the figure every 4 epochs, and equal to the end-of-run one at the last epoch
    assert [("test_robust_acc" in r) for r in at_hist] == [False, False, False, True] * 2
    assert at_hist[-1]["test_robust_acc"] == at["test_robust_acc"]


class _Kill(Sink):
    """Dies (like a killed process) when the record of epoch ``at`` arrives, before its checkpoint."""

    def __init__(self, at: int) -> None:
        self.at = at

    def epoch(self, record: dict) -> None:
        if record["epoch"] == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("method", [
    lambda: PGDAT(eps=0.1, steps=3), lambda: TRADES(eps=0.1, steps=3), lambda: AdvCompSum(eps=0.1, steps=3),
], ids=["pgd_at", "trades", "adv_comp_sum"])
def test_resume_after_a_kill_is_bit_identical(fit_digits, tmp_path, method):
    """The attack's random start is seeded and checkpointed: resuming gives the uninterrupted run."""
    kwargs = dict(epochs=4, hidden=(16,), dropout=0.2)
    ref_model, ref_hist, _ = fit_digits(adversarial=method(), **kwargs)
    ckpt = tmp_path / "checkpoint.pt"
    with pytest.raises(KeyboardInterrupt):
        fit_digits(adversarial=method(), checkpoint_path=ckpt, sinks=[_Kill(2)], **kwargs)
    assert ckpt.exists()
    model, hist, _ = fit_digits(adversarial=method(), checkpoint_path=ckpt, **kwargs)
    assert hist == ref_hist
    for (name, a), b in zip(ref_model.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_the_attack_generator_matters(fit_digits):
    """Control for the test above: another random start gives another model."""
    a, _, _ = fit_digits(adversarial=PGDAT(eps=0.1, steps=3), epochs=1, hidden=(16,))
    torch.manual_seed(0)
    b, _, _ = fit_digits(adversarial=PGDAT(eps=0.1, steps=3, random_start=False), epochs=1, hidden=(16,))
    assert not torch.equal(a.state_dict()["head.weight"], b.state_dict()["head.weight"])


def _yaml_names(group: str) -> list[str]:
    return sorted(p.name[:-5] for p in CONF.joinpath(group).iterdir() if p.name.endswith(".yaml"))


def test_every_adversarial_yaml_is_a_registered_method_and_back():
    assert _yaml_names("adversarial") == ADVERSARIAL.names()
    for name in ADVERSARIAL.names():
        obj = instantiate(OmegaConf.load(str(CONF.joinpath("adversarial", f"{name}.yaml"))))
        assert type(obj) is ADVERSARIAL.get(name)
        doc = type(obj).__doc__
        assert doc and (name == "none" or type(obj).paper.split()[0] in doc)


def test_every_attack_class_has_an_attack_yaml():
    used = set()
    for name in _yaml_names("attack"):
        cfg = OmegaConf.load(str(CONF.joinpath("attack", f"{name}.yaml")))
        if "attack" in cfg:
            used.add(get_class(cfg.attack._target_).registry_name)
    assert used == set(ATTACKS.names())


@pytest.mark.parametrize("cls,kwargs,match", [
    (PGDAT, dict(eps=-1.0), "adversarial.eps must be >= 0"),
    (TRADES, dict(steps=0), "adversarial.steps must be an integer >= 1"),
    (TRADES, dict(beta=-1.0), "adversarial.beta must be >= 0"),
    (AdvCompSum, dict(rho=0.0), "adversarial.rho must be positive"),
    (AdvCompSum, dict(nu=-0.5), "adversarial.nu must be >= 0"),
    (PGDAT, dict(inner="mse"), "unknown adversarial.inner 'mse'"),
])
def test_bad_method_settings_are_refused(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_bad_settings_stop_before_training_in_one_line(run_once):
    """One subprocess run; the other refusals (inputs outside [0, 1], AutoAttack missing) are
    checked in process (test_attacks.py)."""
    message = "adversarial.eps must be >= 0"
    out, summary, proc = run_once("adversarial=pgd_at", "adversarial.eps=-0.1", check=False)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("lossbench: error")]
    assert len(lines) == 1 and message in lines[0], proc.stderr[-2000:]
    assert summary is None and not (out / "metrics.jsonl").exists()

"""Attacks: eps-ball and box constraints, our PGD against torchattacks' PGD, hand-worked projections."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from lossbench.adversarial.attacks import (
    ATTACKS,
    FGSM,
    PGD,
    AutoAttack,
    PixelModel,
    project,
    random_start,
    require_pixel_space,
)
from lossbench.data.transforms import BatchTransform


def _model(shape, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(shape).prod()), 32), nn.ReLU(),
                         nn.Linear(32, 10)).eval()


def _batch(shape, n=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, *shape), generator=g), torch.randint(0, 10, (n,), generator=g)


def _dist(x_adv, x, norm):
    d = (x_adv - x).flatten(1)
    return d.abs().max(1).values if norm == "linf" else d.norm(dim=1)


def _split(name="digits"):
    return SimpleNamespace(name=name, num_classes=10)


ATTACK_CASES = [
    ("pgd linf", lambda: PGD(eps=0.1, steps=10), "linf", 0.1),
    ("pgd l2", lambda: PGD(eps=0.5, steps=10, norm="l2"), "l2", 0.5),
    ("pgd restarts", lambda: PGD(eps=0.05, steps=3, restarts=3), "linf", 0.05),
    ("pgd no start", lambda: PGD(eps=0.2, steps=5, random_start=False), "linf", 0.2),
    ("fgsm", lambda: FGSM(eps=0.3), "linf", 0.3),
    ("fgsm l2", lambda: FGSM(eps=1.0, norm="l2"), "l2", 1.0),
    ("default eps", lambda: PGD(eps=None, steps=5), "linf", 0.1),
]


@pytest.mark.parametrize("shape", [(64,), (1, 8, 8), (3, 6, 6)])
@pytest.mark.parametrize("case", ATTACK_CASES, ids=[c[0] for c in ATTACK_CASES])
def test_every_attack_stays_in_its_ball_and_the_box(case, shape):
    _, make, norm, eps = case
    attack = make()
    attack.setup(_split())
    model = _model(shape)
    x, y = _batch(shape)
    x[0] = 0.0  # corners of the box: the projection must clip, not leave it
    x[1] = 1.0
    x_adv = attack(model, x, y, torch.Generator().manual_seed(3))
    assert x_adv.shape == x.shape
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert float(_dist(x_adv, x, norm).max()) <= eps * (1 + 1e-5) + 1e-7
    assert float(_dist(x_adv, x, norm).max()) > 0.5 * eps  # it did move


def test_autoattack_stays_in_its_ball_and_the_box():
    pytest.importorskip("torchattacks")
    attack = AutoAttack(eps=0.3)
    attack.setup(_split())
    model = _model((64,))
    x, y = _batch((64,), n=8)
    y = model(x).argmax(1)  # correctly classified points, so the attacks run
    x_adv = attack(model, x, y)
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert float(_dist(x_adv, x, "linf").max()) <= 0.3 + 1e-6
    assert (model(x_adv).argmax(1) != y).any()


@pytest.mark.parametrize("norm,shape", [("linf", (64,)), ("linf", (1, 8, 8)), ("l2", (1, 8, 8))])
def test_our_pgd_equals_torchattacks_pgd(norm, shape):
    """Same model, inputs and random start: torchattacks draws its start from the global RNG, ours from
    a generator with the same seed, which on CPU gives the same numbers."""
    torchattacks = pytest.importorskip("torchattacks")
    model = _model(shape, seed=5)
    x, y = _batch(shape, n=32, seed=6)
    eps, alpha, steps = (0.1, 0.02, 10) if norm == "linf" else (0.8, 0.2, 10)
    ours = PGD(eps=eps, step_size=alpha, steps=steps, norm=norm)
    ours.setup(_split())
    mine = ours(model, x, y, torch.Generator().manual_seed(11))
    cls = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
    theirs_attack = cls(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
    torch.manual_seed(11)
    theirs = theirs_attack(x, y)
    assert torch.allclose(mine, theirs, atol=1e-6), float((mine - theirs).abs().max())
    assert float((mine - x).abs().max()) > 0  # not a trivial agreement


def test_projection_by_hand():
    x = torch.tensor([[0.5, 0.95, 0.0]])
    # L-inf eps 0.1: [0.9, 1.2, -0.3] -> delta clipped to [0.1, 0.1, -0.1] -> [0.6, 1.05, -0.1]
    # -> box [0.6, 1.0, 0.0]
    linf = project(torch.tensor([[0.9, 1.2, -0.3]]), x, 0.1, "linf")[0]
    assert linf.tolist() == pytest.approx([0.6, 1.0, 0.0])
    # L2 eps 0.5: delta [0.6, 0, 0.8] (norm 1) is halved to [0.3, 0, 0.4]
    l2 = project(torch.tensor([[1.1, 0.95, 0.8]]), x, 0.5, "l2")[0]
    assert l2.tolist() == pytest.approx([0.8, 0.95, 0.4])


def test_random_start_is_reproducible_from_its_generator():
    x = torch.rand(4, 10)
    a = random_start(x, 0.1, "linf", torch.Generator().manual_seed(0))
    b = random_start(x, 0.1, "linf", torch.Generator().manual_seed(0))
    c = random_start(x, 0.1, "linf", torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_pixel_model_applies_the_dataset_normalization():
    from lossbench.data.synthetic import synthetic

    split = synthetic(num_samples=40, image_shape=[3, 4, 4])
    transform = BatchTransform(split)
    model = _model((3, 4, 4))
    x_raw = split.x_test[:5]
    assert torch.allclose(PixelModel(model, transform)(transform.pixels(x_raw, train=False)),
                          model(transform(x_raw, train=False)), atol=1e-5)


def test_robust_accuracy_attacks_and_scores_a_learned_link(digits_split):
    """With a loss that predicts through a link of its own (LegendreTron), the attacked predictor is
    link(model(x)): its clean accuracy equals the run's, not the raw logits'."""
    from lossbench.adversarial.evaluation import RobustEvaluation
    from lossbench.losses.learned import LegendreTron

    torch.manual_seed(0)
    model = _model((64,)).eval()
    loss = LegendreTron(num_classes=10)
    with torch.no_grad():  # a link far from the identity: its prediction differs from the raw argmax
        for p in loss.parameters():
            p.add_(torch.randn_like(p))
    transform = BatchTransform(digits_split)
    x = transform.pixels(digits_split.x_test, train=False)
    logits = PixelModel(model, transform)(x)
    linked = PixelModel(model, transform, loss.prediction_logits)(x)
    assert torch.allclose(linked, loss.prediction_logits(logits))
    assert not torch.equal(linked.argmax(1), logits.argmax(1))
    robust = RobustEvaluation(PGD(eps=0.1, steps=2), size=None)
    robust.setup(digits_split)
    y = digits_split.y_test
    clean, _ = robust.accuracies(model, digits_split, transform, loss)
    assert clean == pytest.approx(float((linked.argmax(1) == y).float().mean()))
    clean_raw, _ = robust.accuracies(model, digits_split, transform)
    assert clean_raw == pytest.approx(float((logits.argmax(1) == y).float().mean()))


def test_pgd_drives_a_standard_models_accuracy_down(fit_digits, digits_split):
    model, history, _ = fit_digits(epochs=10)
    assert history[-1]["test_acc"] > 0.9
    attack = PGD(eps=0.2, steps=10)
    attack.setup(digits_split)
    x, y = digits_split.x_test, digits_split.y_test
    x_adv = attack(model.eval(), x, y, torch.Generator().manual_seed(0))
    robust = float((model(x_adv).argmax(1) == y).float().mean())
    assert robust < 0.5 * history[-1]["test_acc"]


@pytest.mark.parametrize("kwargs,match", [
    (dict(eps=-0.1), "eps must be >= 0"),
    (dict(steps=0), "steps must be an integer >= 1"),
    (dict(step_size=0.0), "step_size must be positive"),
    (dict(norm="l1"), "unknown attack.norm 'l1'"),
    (dict(restarts=0), "restarts must be"),
])
def test_bad_attack_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PGD(**kwargs)


def test_inputs_outside_pixel_space_are_refused():
    from lossbench.data.synthetic import synthetic

    with pytest.raises(ValueError, match=r"needs inputs in pixel space \[0, 1\].*'synthetic'"):
        require_pixel_space(synthetic(num_samples=50), "adversarial=pgd_at")
    require_pixel_space(synthetic(num_samples=50, image_shape=[1, 4, 4]), "adversarial=pgd_at")  # uint8: fine


def test_eps_null_without_a_known_budget_is_refused():
    with pytest.raises(ValueError, match="no default for dataset 'synthetic'"):
        PGD(eps=None).setup(_split("synthetic"))


def test_autoattack_missing_is_one_line_with_the_install_command(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torchattacks", None)
    with pytest.raises(ImportError, match=r"pip install torchattacks==3\.5\.1"):
        AutoAttack(eps=0.1)


def test_every_attack_is_registered():
    assert ATTACKS.names() == ["autoattack", "fgsm", "pgd"]

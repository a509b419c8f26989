"""LegendreTron (a loss with trainable parameters): its formula on concrete numbers, the official
ICNN's structure, convexity, and the contract: optimizer groups, checkpoint, resume, evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lossbench.core.errors import ConfigError
from lossbench.losses import LOSSES
from lossbench.train.objective import parameter_groups


def _lt(num_classes: int = 3, **kwargs):
    return LOSSES.get("legendretron")(num_classes=num_classes, **kwargs)


def _set_quadratic(loss, scale: float) -> None:
    """F(u) = scale ||u||^2 / 2 up to softplus(-60) ~ 1e-26 times the ICNN: grad F(u) = scale u."""
    with torch.no_grad():
        for potential in loss.potentials:
            potential.w1.fill_(-60.0)
            potential.w0.fill_(math.log(math.expm1(scale)))  # softplus(w0) = scale


def test_a_quadratic_potential_gives_cross_entropy():
    loss = _lt(5).double()
    _set_quadratic(loss, 1.0)
    z = 3 * torch.randn(8, 5, dtype=torch.float64)
    y = torch.randint(5, (8,))
    expected = torch.nn.functional.cross_entropy(z, y, reduction="none")
    torch.testing.assert_close(loss(z, y), expected, rtol=1e-12, atol=1e-12)


def test_a_scaled_quadratic_potential_by_hand():
    """grad F(u) = 2u: p = softmax([2(z_1 - z_3), 2(z_2 - z_3), 0]); z = [1, 0, 2], y = 0 gives
    u = [-1, -2], logits [-2, -4, 0] and -log p_0 = 2 + log(1 + e^-2 + e^-4)."""
    loss = _lt(3).double()
    _set_quadratic(loss, 2.0)
    out = loss(torch.tensor([[1.0, 0.0, 2.0]], dtype=torch.float64), torch.tensor([0]))
    assert out.item() == pytest.approx(2 + math.log(1 + math.exp(-2) + math.exp(-4)), abs=1e-12)


@pytest.mark.parametrize("actnorm_init", ["identity", "data"])
def test_the_link_is_the_gradient_of_a_strictly_convex_potential(actnorm_init):
    loss = _lt(4, actnorm_init=actnorm_init, depth=3, hidden=6).double()
    potential = loss.potentials[0]
    x = 2 * torch.randn(16, 3, dtype=torch.float64)
    potential.gradient(x)  # the data init happens on this first batch
    with torch.no_grad():
        for p in potential.parameters():  # move off the initial values
            p.add_(0.3 * torch.randn_like(p))
    # grad F by central differences of F
    h = 1e-6
    fd = torch.stack([(potential(x + h * e) - potential(x - h * e)) / (2 * h)
                      for e in torch.eye(3, dtype=torch.float64)], 1)
    torch.testing.assert_close(potential.gradient(x), fd, rtol=1e-6, atol=1e-7)
    # Hessian of F >= softplus(w0) I everywhere (g is convex): its smallest eigenvalue
    floor = torch.nn.functional.softplus(potential.w0.double()).item()
    for point in x[:5]:
        hessian = torch.autograd.functional.hessian(lambda v: potential(v[None])[0], point)
        assert torch.linalg.eigvalsh(hessian).min().item() >= floor * (1 - 1e-9)


def _official_icnn3(x: np.ndarray, potential) -> np.ndarray:
    """khflam/legendretron lib/icnn.py ICNN3 and lib/models.py DeepConvexFlow.get_potential, re-derived in
    numpy from the same parameter values: z = act(Wzs[0] x); per middle layer z = act(actnorm(Wz z + Wx x)),
    aug = act(Wx2 x), z = [z, aug]; out = actnorm_last(Wzs[-1] z + Wxs[-1] x); PosLinear is
    linear(x, softplus(W), b) * (1 / x.size(1)); ActNorm is (x + b) (exp(logs) + 0.001);
    F = softplus(w1) icnn + softplus(w0) ||x||^2 / 2."""
    def sp(v):
        return np.logaddexp(0.0, v)

    def t(p):
        return p.detach().double().numpy()

    def norm(v, layer):
        return (v + t(layer.b)) * (np.exp(t(layer.s)) + 0.001)

    z = sp(x @ t(potential.A0).T + t(potential.a0))
    for i in range(len(potential.P)):
        wz = (z @ sp(t(potential.P[i])).T + t(potential.p[i])) / z.shape[1]
        z = np.concatenate([sp(norm(wz + x @ t(potential.B[i]).T + t(potential.b[i]), potential.norms[i])),
                            sp(x @ t(potential.C[i]).T + t(potential.c[i]))], axis=1)
    out = norm((z @ sp(t(potential.P_last)).T) / z.shape[1] + x @ t(potential.B_last).T, potential.norm_last)
    return sp(t(potential.w1)) * out[:, 0] + sp(t(potential.w0)) * (x**2).sum(1) / 2


def test_potential_matches_the_official_icnn():
    loss = _lt(6, actnorm_init="data").double()
    potential = loss.potentials[0]
    x = torch.randn(32, 5, dtype=torch.float64)
    potential(x)  # data-dependent init on this batch, as the official ActNorm does on its first call
    with torch.no_grad():
        for p in potential.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x2 = 3 * torch.randn(7, 5, dtype=torch.float64)
    np.testing.assert_allclose(potential(x2).detach().numpy(), _official_icnn3(x2.numpy(), potential),
                               rtol=1e-12, atol=1e-12)


def test_data_init_normalises_the_first_batch():
    loss = _lt(4, actnorm_init="data").double()
    norm = loss.potentials[0].norms[0]
    pre = 5 + 3 * torch.randn(64, 2, dtype=torch.float64)
    out = norm(pre)
    torch.testing.assert_close(out.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-9, rtol=0)
    std = pre.std(0, unbiased=False)  # scaled by exp(s) + 0.001 = 1 / (std + 1e-6) + 0.001
    torch.testing.assert_close(out.std(0, unbiased=False), std * (1 / (std + 1e-6) + 1e-3),
                               atol=1e-12, rtol=0)
    assert bool(norm.initialized) and torch.equal(norm(pre), out)  # the second batch reuses it


def test_parameter_groups_give_the_link_its_own_learning_rate():
    model = torch.nn.Linear(4, 3)
    loss = _lt(3, lr=0.01, weight_decay=0.0)
    groups = parameter_groups(model, loss)
    assert len(groups) == 2 and groups[1]["lr"] == 0.01 and groups[1]["weight_decay"] == 0.0
    trainable = {id(p) for p in loss.parameters() if p.requires_grad}
    assert {id(p) for p in groups[1]["params"]} == trainable
    assert id(loss.potentials[0].norm_last.b) not in trainable  # a constant shift of F: not trained
    opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=5e-4)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    assert [g["weight_decay"] for g in opt.param_groups] == [5e-4, 0.0]
    no_lr = parameter_groups(model, _lt(3))
    assert "lr" not in no_lr[1] and "weight_decay" not in no_lr[1]  # the optimizer's own
    assert parameter_groups(model, LOSSES.get("ce")()) == [{"params": list(model.parameters())}]


def _fit(split, epochs, path, loss_lr=0.05):
    from lossbench.models.mlp import MLP
    from lossbench.reweight.base import Reweighter
    from lossbench.train.trainer import Trainer

    torch.manual_seed(0)
    model = MLP(split.input_shape, split.num_classes, hidden=[16])
    loss = _lt(split.num_classes, lr=loss_lr)
    opt = torch.optim.SGD(parameter_groups(model, loss), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
    trainer = Trainer(epochs=epochs, device="cpu", progress="none", checkpoint_every=1)
    history = trainer.fit(model, loss, Reweighter(), opt, sched, split, seed=0, checkpoint_path=path)
    return model, loss, opt, history


@pytest.fixture(scope="module")
def digits():
    from lossbench.data import DATASETS

    return DATASETS.get("digits")()


def test_the_link_trains_and_survives_a_checkpoint_and_resume(digits, tmp_path):
    """The link's parameters move, and a run stopped after 2 epochs and resumed ends where a run of 3
    epochs ends: the loss's parameters and their optimizer state are in the checkpoint."""
    start = _lt(digits.num_classes, lr=0.05).state_dict()
    _, straight, opt, history = _fit(digits, 3, tmp_path / "straight.pt")
    assert history[-1]["val_acc"] > 0.8
    moved = straight.state_dict()
    assert not torch.equal(moved["potentials.0.w0"], start["potentials.0.w0"])
    assert opt.param_groups[1]["lr"] == 0.05 and len(opt.state) > 0
    _fit(digits, 2, tmp_path / "stopped.pt")
    _, resumed, _, _ = _fit(digits, 3, tmp_path / "stopped.pt")
    for key, value in moved.items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0)


def test_resuming_from_a_checkpoint_without_the_loss_parameters_is_refused(digits, tmp_path):
    from lossbench.train.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "run.pt"
    _fit(digits, 1, path)
    state = load_checkpoint(path)
    state["loss"] = {}
    save_checkpoint(path, state)
    with pytest.raises(ConfigError, match=r"holds no potentials\.0\.A0, potentials\.0\.B\.0, .*for loss "
                                          r"'legendretron' .*remove it or set trainer.force=true"):
        _fit(digits, 2, path)
    assert path.exists()  # left in place for the user


def test_evaluation_and_training_statistics_score_the_link(digits):
    from lossbench.data.transforms import BatchTransform
    from lossbench.models.mlp import MLP
    from lossbench.reweight.base import NoReweighting
    from lossbench.train.final_eval import evaluate_model
    from lossbench.train.objective import Objective
    from lossbench.train.trainer import Trainer

    torch.manual_seed(0)
    model = MLP(digits.input_shape, digits.num_classes, hidden=[16])
    loss = _lt(digits.num_classes)
    with torch.no_grad():
        loss.potentials[0].w1.fill_(3.0)  # a link far from the identity
    trainer = Trainer(epochs=1, device="cpu", progress="none", checkpoint_every=0)
    transform = BatchTransform(digits)
    logits = trainer.predict(model, digits.x_test, transform, loss)
    torch.testing.assert_close(logits, loss.prediction_logits(model.eval()(transform(digits.x_test, False))))
    summary = evaluate_model(trainer, model, digits, loss=loss)
    assert summary["test_acc"] == pytest.approx((logits.argmax(1) == digits.y_test).double().mean().item())
    step = Objective(loss, NoReweighting(), transform)(model.train(), digits.x_train[:32],
                                                      digits.y_train_noisy[:32], torch.arange(32))
    assert torch.equal(step.pred, loss.prediction_logits(step.logits).argmax(1))
    assert not torch.equal(step.pred, step.logits.argmax(1))

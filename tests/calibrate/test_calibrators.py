"""Every post-hoc calibrator: config and registry agree, it reduces ECE of an over-confident model,
its formula on concrete numbers, and the refusals."""

from __future__ import annotations

from importlib import resources

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lossbench.calibrate import CALIBRATORS, build_calibrators
from lossbench.calibrate.correctness import CorrectnessAware, balanced_weights, ca_loss, view_features
from lossbench.calibrate.scaling import MatrixScaling, TemperatureScaling, VectorScaling
from lossbench.metrics import CALIBRATOR_TITLES, accuracy, ece, fit_temperature, nll

CONF = resources.files("lossbench.conf").joinpath("calibrator")


def yaml_names() -> list[str]:
    return sorted(p.name[:-5] for p in CONF.iterdir() if p.name.endswith(".yaml") and p.name != "none.yaml")


def from_yaml(name: str):
    node = OmegaConf.load(str(CONF.joinpath(f"{name}.yaml")))
    return instantiate(node)


def over_confident(n: int = 3000, c: int = 10, seed: int = 0, sharpen: float = 3.0):
    """Labels drawn from softmax(z): z is calibrated; the model's logits are sharpen * z.

    Views for the correctness-aware calibrator: the model's logits plus Gaussian noise (sd 1.5),
    three draws, as a model's outputs on transformed inputs would scatter around them.
    """
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, c, generator=g) * 2
    y = torch.multinomial(z.softmax(1), 1, generator=g).squeeze(1)
    logits = sharpen * z
    views = torch.stack([logits + 1.5 * torch.randn(logits.shape, generator=g) for _ in range(3)])
    return logits, y, views


def test_every_yaml_is_a_registered_calibrator_and_back():
    assert yaml_names() == CALIBRATORS.names()
    keys = set()
    for name in yaml_names():
        obj = from_yaml(name)
        assert type(obj) is CALIBRATORS.get(name), name
        keys.add(obj.key)
        assert CALIBRATOR_TITLES[obj.key] == obj.title, name  # the legends' words are the class's
    assert keys == set(CALIBRATOR_TITLES)


@pytest.mark.parametrize("name", CALIBRATORS.names())
def test_docstring_gives_formula_and_paper(name):
    cls = CALIBRATORS.get(name)
    assert cls.paper and cls.paper.split()[0] in cls.__doc__ and "softmax" in cls.__doc__


@pytest.mark.parametrize("name", CALIBRATORS.names())
def test_each_calibrator_reduces_the_ece_of_an_over_confident_model(name):
    logits, y, views = over_confident()
    val, test = slice(0, 1500), slice(1500, None)
    calibrator = from_yaml(name)
    fitted = calibrator.fit(logits[val], y[val], views[:, val])
    calibrated = fitted(logits[test], views[:, test])
    before, after = ece(logits[test], y[test]), ece(calibrated, y[test])
    assert before > 0.25
    assert after < before / 4, (name, before, after)
    assert nll(calibrated, y[test]) < nll(logits[test], y[test]) - 0.3
    assert fitted.num_params == calibrator.num_params(10)


@pytest.mark.parametrize("name", ["temperature", "ca"])
def test_temperature_type_calibrators_keep_every_prediction(name):
    logits, y, views = over_confident(600)
    fitted = from_yaml(name).fit(logits, y, views)
    assert torch.equal(fitted(logits, views).argmax(1), logits.argmax(1))


def test_vector_scaling_with_tied_weights_is_temperature_scaling():
    logits, y, _ = over_confident(1000, seed=1)
    tied = VectorScaling(bias=False, tie_weights=True).fit(logits, y)
    t = fit_temperature(logits, y)
    assert 1.0 / tied.params["w"].item() == pytest.approx(t, rel=1e-5)
    scaled = TemperatureScaling().fit(logits, y)(logits).double()
    assert torch.allclose(tied(logits).softmax(1), scaled.softmax(1), atol=1e-6)
    assert tied.num_params == 1


def _kkt(objective, *params: torch.Tensor) -> float:
    """The largest |gradient| of ``objective`` at ``params`` (float64, autograd): 0 at the minimum."""
    leaves = [p.detach().clone().requires_grad_(True) for p in params]
    grads = torch.autograd.grad(objective(*leaves), leaves)
    return max(g.abs().max().item() for g in grads)


def test_vector_and_matrix_scaling_reach_the_nll_minimum_of_their_formula():
    logits, y, _ = over_confident(800, c=4, seed=2)
    z = logits.double()
    vs = VectorScaling().fit(logits, y)
    w, b = vs.params["w"], vs.params["b"]
    assert torch.allclose(vs(logits), z * w + b)  # softmax(w * z + b)
    assert _kkt(lambda w_, b_: F.cross_entropy(z * w_ + b_, y), w, b) < 1e-7
    ms = MatrixScaling().fit(logits, y)
    W, b = ms.params["W"], ms.params["b"]
    assert torch.allclose(ms(logits), z @ W.T + b)  # softmax(W z + b)
    assert _kkt(lambda W_, b_: F.cross_entropy(z @ W_.T + b_, y), W, b) < 1e-7
    reg = MatrixScaling(reg_lambda=2.0, reg_mu=0.5).fit(logits, y)
    off = 1 - torch.eye(4, dtype=torch.float64)

    def odir(W_, b_):  # Kull et al. 2019: lambda / (C(C-1)) sum_{i!=j} W_ij^2 + mu / C sum_j b_j^2
        penalty = 2.0 / 12 * ((W_ * off) ** 2).sum() + 0.5 / 4 * (b_**2).sum()
        return F.cross_entropy(z @ W_.T + b_, y) + penalty

    assert _kkt(odir, reg.params["W"], reg.params["b"]) < 1e-7
    assert (reg.params["W"] * off).abs().sum() < (W * off).abs().sum()  # the penalty shrinks off-diagonals


def test_ca_loss_and_features_by_hand():
    # correctness [1, 1, 1, 0]: a = 3/4, so w = (1/4, 1/4, 1/4, 3/4)
    correct = torch.tensor([True, True, True, False])
    assert balanced_weights(correct).tolist() == pytest.approx([0.25, 0.25, 0.25, 0.75])
    conf = torch.tensor([0.9, 0.8, 0.6, 0.7])
    # sum w (conf - c)^2 / sum w = (0.25 (0.01 + 0.04 + 0.16) + 0.75 * 0.49) / 1.5
    assert ca_loss(conf, correct).item() == pytest.approx((0.25 * 0.21 + 0.75 * 0.49) / 1.5)
    assert ca_loss(conf, correct, balanced=False).item() == pytest.approx((0.01 + 0.04 + 0.16 + 0.49) / 4)
    assert balanced_weights(torch.tensor([True, True])).tolist() == [1.0, 1.0]  # all correct: uniform
    # features: each view's softmax at the original's top-2 classes, views side by side
    logits = torch.tensor([[3.0, 1.0, 2.0]])
    views = torch.log(torch.tensor([[[0.5, 0.2, 0.3]], [[0.1, 0.6, 0.3]]]))
    assert view_features(logits, views, top_k=2).tolist()[0] == pytest.approx([0.5, 0.3, 0.1, 0.3])


def test_ca_starts_at_the_identity_and_the_code_setting_is_reachable():
    logits, y, views = over_confident(400, seed=3)
    untrained = CorrectnessAware(epochs=1, lr=1e-12).fit(logits, y, views)
    assert torch.allclose(untrained(logits, views), logits, atol=1e-5)  # T = 1 at the start
    code = CorrectnessAware(lr=1e-4, epochs=10, temperature_map="clamp").fit(logits, y, views)
    t = logits / code(logits, views)
    assert torch.all((t > 0.1 - 1e-4) & (t < 10 + 1e-3) | (logits.abs() < 1e-6))


def test_matrix_scaling_with_fewer_validation_samples_than_parameters_is_refused():
    with pytest.raises(ValueError, match=r"calibrator matrix fits 110 parameters for 10 classes and needs "
                                         r"at least 110 validation samples; the validation split has 109"):
        MatrixScaling().check(109, 10)
    MatrixScaling().check(110, 10)
    MatrixScaling(reg_lambda=1.0).check(20, 10)  # regularised: allowed
    with pytest.raises(ValueError, match="calibrator vector fits 20 parameters"):
        VectorScaling().check(19, 10)
    TemperatureScaling().check(0, 10)  # nothing to fit on: T = 1


def test_unknown_or_repeated_calibrators_are_refused_in_one_line():
    from lossbench.lifecycle.precheck import check_overrides

    assert check_overrides(["calibrator=[temperature,vectr]"]) == (
        "unknown calibrator 'vectr'; closest: vector; "
        "known: ca, dirichlet, matrix, none, temperature, vector")
    assert check_overrides(["calibrator=dirichlt"]).startswith("unknown calibrator 'dirichlt'")
    assert check_overrides(["calibrator=[temperature,vector,matrix,dirichlet,ca]"]) is None
    with pytest.raises(KeyError, match="unknown calibrator 'vectr'; known: ca, dirichlet"):
        build_calibrators({"vectr": {"_target_": "lossbench.calibrate.scaling.VectorScaling"}})


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature_map": "tanh"}, "temperature_map must be one of smooth, clamp"),
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"views": ["rotate", "flip"]}, "unknown view 'flip'"),
])
def test_ca_refuses_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CorrectnessAware(**kwargs)


def test_accuracy_is_unchanged_by_temperature_and_recorded_once():
    logits, y, _ = over_confident(500, seed=4)
    assert accuracy(TemperatureScaling().fit(logits, y)(logits), y) == accuracy(logits, y)

"""Cut Cross-Entropy (a loss computed from the features and the head): every p_y-only form against its
loss, the chunked kernel against the materialised logits, memory, backends and refusals."""

from __future__ import annotations

import sys

import pytest
import torch

from lossbench.losses import LOSSES
from lossbench.losses.cce import P_Y_FORMS, HeadLogProb, chunked_argmax
from lossbench.reweight.base import NoReweighting
from lossbench.reweight.correction import ForwardCorrection
from lossbench.reweight.loss_based import LossBased
from lossbench.train.objective import check_pairing, check_training


def _cce(**kwargs):
    return LOSSES.get("cce")(**kwargs)


INNER = [("ce", {}), ("comp_sum", {"tau": 0.5}), ("comp_sum", {"tau": 1.5}), ("sum_exp", {}),
         ("comp_gce", {}), ("comp_mae", {}), ("gce", {}), ("gce", {"q": 0.2}), ("mae", {}),
         ("mae", {"scale": 1.0}), ("focal", {}),
         ("focal", {"gamma": 0.5, "detach_weight": True}), ("poly1", {"epsilon": 2.0}), ("rce", {}),
         ("rce", {"A": "code"}), ("sce", {"alpha": 6.0, "beta": 0.1}), ("taylor_ce", {"t": 4})]


def test_every_p_y_form_has_a_case():
    assert {name for name, _ in INNER} == set(P_Y_FORMS)


@pytest.mark.parametrize(("inner", "kwargs"), INNER)
def test_the_p_y_form_is_the_inner_loss(inner, kwargs):
    """Value and gradient of f(log p_y) equal the inner loss's own compute on the full logits, in float64."""
    g = torch.Generator().manual_seed(0)
    saturated = torch.tensor([[30.0, -30, 0, 0, 0, 0, 0], [-30.0, 30, 0, 0, 0, 0, 0]], dtype=torch.float64)
    z = torch.cat([4 * torch.randn(30, 7, generator=g, dtype=torch.float64), saturated])
    y = torch.cat([torch.randint(7, (30,), generator=g), torch.tensor([0, 0])])
    reference = LOSSES.get(inner)(**kwargs)
    wrapped = _cce(inner=inner, inner_kwargs=kwargs)
    z1, z2 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    want, got = reference(z1, y), wrapped(z2, y)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    (g1,) = torch.autograd.grad(want.sum(), z1)
    (g2,) = torch.autograd.grad(got.sum(), z2)
    torch.testing.assert_close(g2, g1, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("chunk", [1, 3, 7, 50])
@pytest.mark.parametrize("bias", [True, False])
def test_chunked_log_p_y_is_the_materialised_one(chunk, bias):
    g = torch.Generator().manual_seed(chunk)
    e = torch.randn(9, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(7, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(7, generator=g, dtype=torch.float64, requires_grad=True) if bias else None
    y = torch.randint(7, (9,), generator=g)
    weights = torch.randn(9, generator=g, dtype=torch.float64)
    logp, pred = HeadLogProb.apply(e, w, b, y, chunk)
    logits = e @ w.T + (b if bias else 0)
    ref = logits.log_softmax(1).gather(1, y[:, None]).squeeze(1)
    torch.testing.assert_close(logp, ref, rtol=1e-12, atol=1e-12)
    assert torch.equal(pred, logits.argmax(1)) and torch.equal(chunked_argmax(e, w, b, chunk), pred)
    inputs = (e, w) + ((b,) if bias else ())
    got = torch.autograd.grad((weights * logp).sum(), inputs)
    want = torch.autograd.grad((weights * ref).sum(), inputs)
    for a, c in zip(got, want, strict=True):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda e_, w_: HeadLogProb.apply(e_, w_, b, y, chunk)[0], (e, w))


def test_head_loss_equals_the_loss_on_materialised_logits():
    head = torch.nn.Linear(5, 11).double()
    e = torch.randn(13, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randint(11, (13,))
    loss = _cce(inner="focal", chunk=4)
    values, pred = loss.head_loss(e, head, y)
    reference = LOSSES.get("focal")()(head(e), y)
    torch.testing.assert_close(values, reference, rtol=1e-10, atol=1e-12)
    assert torch.equal(pred, head(e).argmax(1))
    got = torch.autograd.grad(values.mean(), (e, head.weight, head.bias))
    want = torch.autograd.grad(reference.mean(), (e, head.weight, head.bias))
    for a, c in zip(got, want, strict=True):
        torch.testing.assert_close(a, c, rtol=1e-9, atol=1e-12)


def test_the_chunked_path_never_allocates_the_logits():
    """At 100,000 classes the [64, C] float32 logits take 25.6 MB; no operation of the chunked forward
    and backward allocates that much (the most is the gradients of W and b, C x 17 floats = 6.8 MB)."""
    from torch.profiler import ProfilerActivity, profile

    b, d, c = 64, 16, 100_000
    torch.manual_seed(0)
    head = torch.nn.Linear(d, c)
    e = torch.randn(b, d, requires_grad=True)
    y = torch.randint(c, (b,))
    loss = _cce(chunk=2048)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        values, _ = loss.head_loss(e, head, y)
        values.mean().backward()
    largest = max(event.cpu_memory_usage for event in prof.events())
    assert largest <= c * (d + 1) * 4 + 4096 < b * c * 4
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        torch.nn.functional.cross_entropy(head(e), y).backward()
    assert max(event.cpu_memory_usage for event in prof.events()) >= b * c * 4  # the check sees logits


def test_the_training_step_never_forms_logits():
    from lossbench.data import DATASETS
    from lossbench.data.transforms import BatchTransform
    from lossbench.models.mlp import MLP
    from lossbench.train.objective import Objective

    split = DATASETS.get("digits")()
    torch.manual_seed(0)
    model = MLP(split.input_shape, split.num_classes, hidden=[16])
    index = torch.arange(40)
    x, y = split.x_train[index], split.y_train_noisy[index]
    transform = BatchTransform(split)
    step = Objective(_cce(inner="gce"), NoReweighting(), transform)(model, x, y, index)
    assert step.logits is None
    logits = model(transform(x, train=True))
    reference = LOSSES.get("gce")()(logits, y)
    torch.testing.assert_close(step.per_sample, reference.detach())
    torch.testing.assert_close(step.loss, reference.mean())
    assert torch.equal(step.pred, logits.argmax(1))


def test_reweighting_that_reads_the_logits_is_refused():
    with pytest.raises(ValueError, match="reweight=forward reads the logits, which loss 'cce' never forms"):
        check_pairing(_cce(), ForwardCorrection())
    check_pairing(_cce(), LossBased())  # per-sample weights need no logits


@pytest.mark.parametrize("inner", ["label_smoothing", "nce", "mse", "gjs"])
def test_losses_of_the_whole_distribution_are_refused(inner):
    with pytest.raises(ValueError, match=f"inner loss '{inner}' is not a function of p_y alone here; "
                                         f"known: ce, comp_sum"):
        _cce(inner=inner)


def test_the_kernel_backend_needs_a_cuda_device():
    pytest.importorskip("cut_cross_entropy", reason="the [cce] extra is not installed")
    loss = _cce(backend="cce")
    with pytest.raises(ValueError, match="loss.backend=cce runs the Cut Cross-Entropy Triton kernel, which "
                                         "needs a CUDA device, and the run's device is cpu"):
        check_training(loss, NoReweighting(), torch.arange(3), 64, torch.device("cpu"))


def test_a_missing_package_is_refused_with_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "cut_cross_entropy", None)  # import raises ImportError
    for backend in ("cce", "torch_compile"):
        with pytest.raises(ValueError, match=f"loss.backend={backend} needs the optional package "
                                             r"cut-cross-entropy \(the lossbench\[cce\] extra\); "
                                             "install it with: pip install 'cut-cross-entropy==25.1.1'"):
            _cce(backend=backend)
    _cce(backend="chunked")


@pytest.mark.slow
def test_the_packages_torch_compile_path_agrees_on_cpu():
    """cut-cross-entropy's non-kernel implementation (torch.compile; compiles once, ~10 s here)."""
    pytest.importorskip("cut_cross_entropy")
    head = torch.nn.Linear(6, 50)
    e = torch.randn(16, 6, requires_grad=True)
    y = torch.randint(50, (16,))
    values, pred = _cce(inner="poly1", backend="torch_compile").head_loss(e, head, y)
    reference = LOSSES.get("poly1")()(head(e), y)
    torch.testing.assert_close(values, reference, rtol=1e-5, atol=1e-6)
    assert torch.equal(pred, head(e).argmax(1))
    got = torch.autograd.grad(values.sum(), (e, head.weight, head.bias))
    want = torch.autograd.grad(reference.sum(), (e, head.weight, head.bias))
    for a, c in zip(got, want, strict=True):
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-6)


def test_trains_a_synthetic_problem_with_thousands_of_classes():
    """A seeded Gaussian mixture of 3,000 classes: training forms no [batch, 3000] logits."""
    from lossbench.data import DATASETS
    from lossbench.models.mlp import MLP
    from lossbench.reweight.base import Reweighter
    from lossbench.train.objective import parameter_groups
    from lossbench.train.trainer import Trainer

    split = DATASETS.get("synthetic")(num_samples=12_000, num_features=16, num_classes=3000, separation=8.0,
                                      test_size=600, val_size=600)
    torch.manual_seed(0)
    model = MLP(split.input_shape, split.num_classes, hidden=[32])
    loss = _cce(chunk=512)
    opt = torch.optim.Adam(parameter_groups(model, loss), lr=3e-3)
    sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
    trainer = Trainer(epochs=3, batch_size=256, device="cpu", progress="none", checkpoint_every=0)
    history = trainer.fit(model, loss, Reweighter(), opt, sched, split, seed=0)
    assert history[-1]["train_loss"] < history[0]["train_loss"] < 8.1  # log 3000 = 8.0 at chance
    assert history[-1]["train_acc"] > history[0]["train_acc"]

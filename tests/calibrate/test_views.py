"""Transformed views for the correctness-aware calibrator: each transformation by hand, determinism,
and a model's view logits through Trainer.predict."""

from __future__ import annotations

import pytest
import torch

from lossbench.calibrate.views import default_views, grey, jitter, rotate, view_logits, view_op


def test_rotate_by_90_degrees_is_rot90_and_by_0_is_the_identity():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.allclose(rotate(x, 0.0), x, atol=1e-5)
    turned = rotate(x, 90.0)
    assert any(torch.allclose(turned, torch.rot90(x, k, dims=(2, 3)), atol=1e-4) for k in (1, -1))


def test_grey_is_luminance_for_rgb_and_a_box_blur_for_one_channel():
    rgb = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    out = grey(rgb)
    assert torch.allclose(out, torch.full_like(rgb, 0.299 + 0.5 * 0.587))
    one = torch.zeros(1, 1, 3, 3)
    one[0, 0, 1, 1] = 9.0
    assert grey(one)[0, 0, 1, 1].item() == pytest.approx(1.0)  # the centre pixel spread over its 3x3 box
    assert grey(one).sum().item() == pytest.approx(9.0)  # each of the 9 outputs sees it once


def test_jitter_is_seeded_and_stays_in_range():
    x = torch.rand(8, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    a = jitter(x, torch.Generator().manual_seed(3))
    b = jitter(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, x)
    assert a.min() >= 0 and a.max() <= 1
    # brightness factor f and contrast factor g in [0.6, 1.4]: one image by hand
    g = torch.Generator().manual_seed(3)
    f, c = 0.6 + 0.8 * torch.rand(8, generator=g), 0.6 + 0.8 * torch.rand(8, generator=g)
    bright = (x[0] * f[0]).clamp(0, 1)
    assert torch.allclose(a[0], ((bright - bright.mean()) * c[0] + bright.mean()).clamp(0, 1), atol=1e-6)


def test_feature_noise_views_scale_with_the_feature_spread():
    std = torch.tensor([1.0, 10.0])
    x = torch.zeros(20000, 2)
    noisy = view_op("noise2", std)(x, torch.Generator().manual_seed(0))
    assert noisy.std(0).tolist() == pytest.approx([0.2, 2.0], rel=0.03)
    assert default_views(False) == ("noise1", "noise2", "noise3")
    assert default_views(True) == ("rotate", "grey", "jitter")


def test_view_logits_through_the_trainer_are_deterministic():
    from lossbench.data.synthetic import synthetic
    from lossbench.data.transforms import BatchTransform
    from lossbench.train.trainer import Trainer

    split = synthetic(num_samples=80, num_classes=3, test_size=0.25, val_size=0.25, image_shape=[1, 8, 8],
                      seed=0)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    trainer = Trainer(epochs=1, device="cpu", eval_batch_size=7)
    transform = BatchTransform(split)
    a = view_logits(trainer, model, split.x_test, transform, default_views(True), seed=5)
    b = view_logits(trainer, model, split.x_test, transform, default_views(True), seed=5)
    assert a.shape == (3, len(split.x_test), 3) and torch.equal(a, b)
    plain = trainer.predict(model, split.x_test, transform)
    assert not torch.allclose(a[0], plain)  # a rotated image is another input

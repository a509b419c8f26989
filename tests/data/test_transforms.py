"""On-device batch augmentation and normalization."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lossbench.data.synthetic import synthetic
from lossbench.data.transforms import BatchTransform, augment_batch, rotate_batch


def _windows(x: torch.Tensor, pad: int) -> list[tuple[int, int, bool, torch.Tensor]]:
    """Every (dy, dx, flipped, window) an augmentation of the image x [C, H, W] may produce."""
    _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    out = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            window = padded[:, dy : dy + h, dx : dx + w]
            out += [(dy, dx, False, window), (dy, dx, True, window.flip(2))]
    return out


def _identify(image: torch.Tensor, source: torch.Tensor, pad: int) -> set[tuple[int, int, bool]]:
    return {(dy, dx, f) for dy, dx, f, win in _windows(source, pad) if torch.equal(win, image)}


def test_crop_flip_takes_a_padded_window_per_image():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (64, 3, 10, 12), generator=g, dtype=torch.uint8)
    out = augment_batch(x, "crop_flip", torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == torch.uint8
    seen = []
    for image, source in zip(out, x, strict=True):
        found = _identify(image, source, 4)
        assert found, "output is not a window of the zero-padded input"
        seen += list(found)
    offsets = {(dy, dx) for dy, dx, _ in seen}
    flips = [f for _, _, f in seen]
    assert len(offsets) > 20  # offsets spread over the 9 x 9 possibilities
    assert 0.25 < sum(flips) / len(flips) < 0.75


def test_crop_pads_with_zeros_and_never_flips():
    x = torch.full((200, 1, 6, 6), 7, dtype=torch.uint8)
    x[:, :, :, 0] = 9  # marks the left edge
    out = augment_batch(x, "crop", torch.Generator().manual_seed(0))
    assert set(out.unique().tolist()) <= {0, 7, 9}
    assert (out == 0).any()  # some windows reach into the padding
    for image, source in zip(out[:20], x[:20], strict=True):
        assert any(not f for _, _, f in _identify(image, source, 4))


def test_flip_alone_mirrors_or_keeps():
    x = torch.arange(32 * 3 * 4 * 5, dtype=torch.float32).view(32, 3, 4, 5)
    out = augment_batch(x, "flip", torch.Generator().manual_seed(0))
    mirrored = torch.tensor([torch.equal(o, s.flip(2)) for o, s in zip(out, x, strict=True)])
    kept = torch.tensor([torch.equal(o, s) for o, s in zip(out, x, strict=True)])
    assert torch.all(mirrored ^ kept) and mirrored.any() and kept.any()


def test_augmentation_follows_the_generator():
    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    a = augment_batch(x, "crop_flip", torch.Generator().manual_seed(3))
    b = augment_batch(x, "crop_flip", torch.Generator().manual_seed(3))
    c = augment_batch(x, "crop_flip", torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_rotate_batch_is_torchvision_s_nearest_rotation():
    """torchvision.transforms.functional.rotate(img, angle, NEAREST) (counter-clockwise, about the centre,
    zeros outside), pixel for pixel, on square and non-square uint8 images."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.functional import rotate

    g = torch.Generator().manual_seed(0)
    for shape in ((3, 32, 32), (1, 20, 36)):
        x = torch.randint(0, 256, (5, *shape), dtype=torch.uint8, generator=g)
        angles = torch.tensor([0.0, 7.3, -13.0, 20.0, -20.0])
        out = rotate_batch(x, angles)
        assert out.dtype == torch.uint8
        for image, source, angle in zip(out, x, angles.tolist(), strict=True):
            assert torch.equal(image, rotate(source, angle, interpolation=InterpolationMode.NEAREST))
    assert not torch.equal(out[1], x[1])


def test_crop_flip_rotate_rotates_the_crop_flip_window_by_up_to_20_degrees():
    """The CIFAR-100 augmentation of the APL code and the SCE reproduction: RandomCrop(32, 4),
    RandomHorizontalFlip, RandomRotation(20), in that order, the angle uniform in [-20, 20]."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.functional import rotate

    x = torch.randint(0, 256, (64, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    out = augment_batch(x, "crop_flip_rotate", torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    windows = augment_batch(x, "crop_flip", g)  # the same draws, then the angles
    angles = (2 * torch.rand(64, generator=g) - 1) * 20
    assert angles.abs().max() <= 20 and angles.min() < -10 and angles.max() > 10
    for image, window, angle in zip(out, windows, angles.tolist(), strict=True):
        assert torch.equal(image, rotate(window, angle, interpolation=InterpolationMode.NEAREST))


def test_augmentation_needs_images():
    with pytest.raises(ValueError, match="needs images"):
        augment_batch(torch.zeros(4, 10), "crop")
    with pytest.raises(ValueError, match="unknown augmentation 'cutout'"):
        augment_batch(torch.zeros(4, 1, 8, 8), "cutout")


def test_batch_transform_normalizes_and_augments_only_in_training():
    split = synthetic(num_samples=64, num_classes=2, test_size=0, val_size=0, image_shape=[3, 8, 8],
                      augment="crop_flip")
    transform = BatchTransform(split, channels_last=True)
    x = split.x_train[:16]
    mean = torch.tensor(split.mean).view(1, 3, 1, 1)
    std = torch.tensor(split.std).view(1, 3, 1, 1)
    evaluated = transform(x, train=False)
    assert evaluated.dtype == torch.float32
    assert torch.allclose(evaluated, (x.float() / 255 - mean) / std, atol=1e-5)
    assert evaluated.is_contiguous(memory_format=torch.channels_last)
    trained = transform(x, train=True, generator=torch.Generator().manual_seed(0))
    assert trained.shape == x.shape and not torch.allclose(trained, evaluated)
    # padding is black before normalization, as with torchvision's RandomCrop then Normalize
    assert torch.isclose(trained, -mean / std, atol=1e-5).all(1).any()


def test_batch_transform_passes_features_through():
    split = synthetic(num_samples=40, num_features=5)
    out = BatchTransform(split)(split.x_train[:8], train=True)
    assert torch.equal(out, split.x_train[:8])

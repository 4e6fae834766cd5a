"""Train/test transforms: shapes, normalisation, flip/crop, random erasing semantics."""
import math

import numpy as np
import torch
from PIL import Image

from dualref.datasets.transforms import (IMAGENET_MEAN, IMAGENET_STD, RandomErasing,
                                         build_test_transform, build_train_transform)


def gradient_image(w=40, h=80):
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None, None]
    arr = np.concatenate([np.broadcast_to(x, (h, w, 1)), np.broadcast_to(y, (h, w, 1)),
                          np.full((h, w, 1), 128.0)], axis=2)
    return Image.fromarray(arr.astype(np.uint8))


def test_test_transform_is_bicubic_resize_then_normalise():
    img = gradient_image()
    out = build_test_transform(64, 32)(img)
    assert out.shape == (3, 64, 32)
    ref = np.asarray(img.resize((32, 64), Image.BICUBIC), dtype=np.float32) / 255.0
    mean = np.array(IMAGENET_MEAN, dtype=np.float32)
    std = np.array(IMAGENET_STD, dtype=np.float32)
    expected = torch.from_numpy(((ref - mean) / std).transpose(2, 0, 1))
    assert torch.allclose(out, expected, atol=1e-5)


def test_train_transform_shape_range_and_seeded():
    img = gradient_image()
    t = build_train_transform(64, 32)
    torch.manual_seed(0)
    a = [t(img) for _ in range(5)]
    torch.manual_seed(0)
    b = [t(img) for _ in range(5)]
    for x, y in zip(a, b):
        assert x.shape == (3, 64, 32)
        assert torch.equal(x, y)
        # Pixel values in [0, 1] map to [-mean/std, (1-mean)/std] per channel.
        for c in range(3):
            lo = -IMAGENET_MEAN[c] / IMAGENET_STD[c]
            hi = (1 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
            assert lo - 1e-5 <= x[c].min() and x[c].max() <= hi + 1e-5
    assert any(not torch.equal(a[0], x) for x in a[1:])  # augmentation actually varies


def test_train_transform_is_flip_pad_crop_of_test_resize():
    img = gradient_image()
    base = build_test_transform(64, 32)(img)
    t = build_train_transform(64, 32)
    torch.manual_seed(1)
    for _ in range(5):
        out = t(img)
        # Each output is base (maybe flipped) shifted by at most 10 px, zero-padded
        # (zero pixel -> -mean/std after normalisation).
        pad_value = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]).view(3, 1, 1)
        found = False
        for flipped in (base, base.flip(2)):
            padded = torch.nn.functional.pad(flipped - pad_value, (10, 10, 10, 10)) + pad_value
            for top in range(21):
                for left in range(21):
                    if torch.allclose(padded[:, top:top + 64, left:left + 32], out, atol=1e-5):
                        found = True
        assert found


def test_random_erasing_fills_rectangle_with_raw_mean():
    torch.manual_seed(0)
    erase = RandomErasing(probability=1.0)
    img = torch.full((3, 64, 32), 5.0)
    for _ in range(20):
        out = erase(img)
        erased = out != 5.0
        assert erased.any()
        assert torch.equal(erased[0], erased[1]) and torch.equal(erased[1], erased[2])
        rows = erased[0].any(1).nonzero().flatten()
        cols = erased[0].any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        assert erased[0].sum() == h * w  # one solid rectangle
        assert h < 64 and w < 32
        # Area fraction close to [0.02, 0.4] (rounding of h, w loosens it a bit).
        assert 0.02 * 0.5 <= h * w / (64 * 32) <= 0.4 * 1.5
        for c in range(3):
            assert torch.allclose(out[c][erased[c]], torch.tensor(IMAGENET_MEAN[c]))
    assert torch.equal(img, torch.full((3, 64, 32), 5.0))  # input untouched


def test_random_erasing_probability_and_aspect_law():
    torch.manual_seed(0)
    erase = RandomErasing(probability=0.5)
    img = torch.zeros(1, 128, 64)
    hits, aspects = 0, []
    for _ in range(300):
        out = erase(img)
        mask = out[0] != 0
        if mask.any():
            hits += 1
            h, w = int(mask.any(1).sum()), int(mask.any(0).sum())
            aspects.append(h / w)
    assert 110 < hits < 190
    # Aspect drawn uniformly in [0.3, 3.33] (not log-uniform): its mean is ~1.8,
    # a log-uniform law would give ~1.26; the accepted rectangles skew it a bit.
    assert 1.45 < float(np.mean(aspects)) < 2.1
    assert min(aspects) > 0.3 * 0.8 and max(aspects) < (1 / 0.3) * 1.25


def test_random_erasing_optional_in_train_transform():
    assert not any(isinstance(s, RandomErasing) for s in build_train_transform(64, 32).transforms)
    steps = build_train_transform(64, 32, random_erasing=True).transforms
    assert isinstance(steps[-1], RandomErasing) and math.isclose(steps[-1].probability, 0.5)


def test_pad_option_bounds_the_shift():
    img = gradient_image()
    base = build_test_transform(64, 32)(img)
    pad_value = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]).view(3, 1, 1)
    torch.manual_seed(2)
    # padding 0: only the flip is left
    for _ in range(4):
        out = build_train_transform(64, 32, padding=0)(img)
        assert torch.allclose(out, base, atol=1e-5) or torch.allclose(out, base.flip(2), atol=1e-5)
    # padding 3: every output is a shift of at most 3 pixels, and some shift happens
    shifts = set()
    for _ in range(8):
        out = build_train_transform(64, 32, padding=3, flip_probability=0.0)(img)
        padded = torch.nn.functional.pad(base - pad_value, (3, 3, 3, 3)) + pad_value
        found = [(t, l) for t in range(7) for l in range(7)
                 if torch.allclose(padded[:, t:t + 64, l:l + 32], out, atol=1e-5)]
        assert found
        shifts.add(found[0])
    assert len(shifts) > 1

"""The ground's one-home helpers (issue 31): the uint8 -> tensor conversion, the JPEG round trip,
an image's size from its header, and the learning-rate schedule."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from plic.image_io import (
    ImageReadError,
    image_size,
    jpeg_round_trip,
    to_image,
    to_tensor,
    write_png,
)
from plic.schedule import lr_at


def test_to_tensor_layout_and_ranges():
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 14
    x = to_tensor(img)
    assert x.shape == (1, 3, 2, 3) and x.dtype == torch.float32
    assert x[0, 2, 1, 0] == pytest.approx(img[1, 0, 2] / 255.0)
    assert to_tensor(img, batch=False).shape == (3, 2, 3)
    # k / 255 * 255 == k for every byte: both ranges carry the same values
    every = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    assert torch.equal(to_tensor(every) * 255.0, to_tensor(every, unit=False))
    view = every[::2, ::3]  # not contiguous
    assert torch.equal(to_tensor(view, unit=False)[0].permute(1, 2, 0).to(torch.uint8),
                       torch.from_numpy(np.ascontiguousarray(view)))


def test_to_tensor_stacks_dtypes_and_devices_give_the_same_values():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (4, 5, 7, 3), dtype=np.uint8)
    # what the call sites wrote by hand before (issue 31), value for value
    old = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    x = to_tensor(imgs)
    assert x.shape == (4, 3, 5, 7) and torch.equal(x, old)
    assert to_tensor(imgs, batch=False).shape == (4, 3, 5, 7)  # a stack has its batch already
    for i in range(4):
        assert torch.equal(to_tensor(imgs[i]), old[i:i + 1])
    x64 = to_tensor(imgs[0], unit=False, dtype=torch.float64)
    assert x64.dtype == torch.float64
    assert torch.equal(x64, torch.from_numpy(imgs[0].astype(np.float64)).permute(2, 0, 1)[None])
    # the bytes move first, then the scaling runs there: the same values on the CPU
    assert torch.equal(to_tensor(imgs[0], device="cpu"), to_tensor(imgs[0]))
    ro = imgs[1].copy()
    ro.flags.writeable = False  # e.g. np.asarray of a PIL image
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns on a read-only array
        assert torch.equal(to_tensor(ro), old[1:2])


def test_to_image_inverts_to_tensor_and_rounds_half_to_even():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    x = to_tensor(img)
    assert np.array_equal(to_image(x), img) and np.array_equal(to_image(x[0]), img)
    # clamped, then k/255 rounds half to even: 0.5/255 -> 0, 1.5/255 -> 2, 2.5/255 -> 2
    t = torch.tensor([-0.2, 1.7, 0.5 / 255, 1.5 / 255, 2.5 / 255, 254.5 / 255]).view(1, 1, 6)
    out = to_image(t.expand(3, 1, 6))
    assert out.dtype == np.uint8 and out.shape == (1, 6, 3)
    old = t.clamp(0, 1).mul(255).round().to(torch.uint8)  # what the call sites wrote before
    assert out[0, :, 0].tolist() == old[0, 0].tolist() == [0, 255, 0, 2, 2, 254]
    with pytest.raises(ValueError, match="one image"):
        to_image(torch.zeros(2, 3, 4, 4))


def test_jpeg_round_trip_is_pillows():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    for q, sub in ((30, None), (95, 0)):
        dec, data = jpeg_round_trip(img, q, subsampling=sub)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=q,
                                  **({} if sub is None else {"subsampling": sub}))
        assert data == buf.getvalue() and data[:2] == b"\xff\xd8"
        want = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        assert dec.dtype == np.uint8 and (dec == want).all()
    assert (np.abs(jpeg_round_trip(img, 95, 0)[0].astype(int) - img).mean()
            < np.abs(jpeg_round_trip(img, 10)[0].astype(int) - img).mean())
    with pytest.raises(ValueError):
        jpeg_round_trip(img[:, :, 0], 50)


def test_image_size_from_the_header(tmp_path):
    p = write_png(tmp_path / "a.png", np.zeros((7, 11, 3), np.uint8))
    assert image_size(p) == (11, 7)
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(ImageReadError, match="bad.png"):
        image_size(tmp_path / "bad.png")


def test_lr_schedule_steps_down_then_decays():
    # step-down at the milestones (codec.train)
    assert [lr_at(s, 10, 1.0, (0.2, 0.5)) for s in (0, 1, 2, 4, 5, 9)] == \
        [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    # constant, then linear to 0 over the last half (perceptual_metric.fit)
    lrs = [lr_at(s, 10, 2.0, decay_fraction=0.5) for s in range(11)]
    assert lrs[:5] == [2.0] * 5 and lrs[5:] == pytest.approx([2.0, 1.6, 1.2, 0.8, 0.4, 0.0])
    # both at once: the decay applies to the stepped-down rate
    assert lr_at(8, 10, 1.0, (0.5,), 0.1, 0.5) == pytest.approx(0.1 * 2 / 5)


def test_only_image_io_opens_images_with_pillow():
    # one image I/O module (issue 31): every other module reads through plic.image_io
    from plic.paths import REPO_ROOT

    packages = ("plic", "codec", "distortions", "mturk", "perceptual_metric", "benchmarks")
    found = [str(p.relative_to(REPO_ROOT)) for pkg in packages
             for p in sorted((REPO_ROOT / pkg).rglob("*.py"))
             if "Image.open(" in p.read_text(encoding="utf-8")
             and p != REPO_ROOT / "plic" / "image_io.py"]
    assert (REPO_ROOT / "plic" / "image_io.py").is_file() and not found, found

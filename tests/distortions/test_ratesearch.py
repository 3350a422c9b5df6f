"""The rate search: never over the target, the highest-quality fit, unreachable targets."""

import math

import numpy as np
import pytest

from distortions.backends import Backend, BackendOptions, ParamSpec, make_backend
from distortions.ratesearch import RateCurve, search
from plic.image_io import center_crop

IMG = np.zeros((16, 16, 3), np.uint8)  # 256 pixels: n bytes = n / 32 bpp


class FakeBackend(Backend):
    """File size is a given function of the parameter; counts encodes."""

    name, ext = "fake", "bin"

    def __init__(self, size_of, param: ParamSpec):
        self.size_of, self.param, self.calls = size_of, param, 0

    @property
    def version(self):
        return "fake-1"

    def encode(self, image, param):
        self.calls += 1
        return b"x" * int(self.size_of(param))

    def decode(self, data):
        return IMG


def _bpp(nbytes):
    return 8 * nbytes / 256


QUALITY = ParamSpec("quality", 1, 100, more_bits_when="higher")
QP = ParamSpec("qp", 0, 51, more_bits_when="lower")


def _exhaustive(backend, target):
    """The brute-force answer: the most-bits step that fits (monotone curves)."""
    spec = backend.param
    fits = [p for p in range(int(spec.lo), int(spec.hi) + 1)
            if _bpp(int(backend.size_of(p))) <= target]
    if not fits:
        return None
    return max(fits) if spec.more_bits_when == "higher" else min(fits)


@pytest.mark.parametrize("spec,size_of", [
    (QUALITY, lambda q: 20 + 3 * q + 0.02 * q * q),            # JPEG-like: grows with quality
    (QP, lambda qp: 4000 * 2 ** (-qp / 6)),                    # HEVC-like: halves every 6 QP
])
def test_integer_search_matches_exhaustive(spec, size_of):
    for target in np.linspace(0.5, 60, 47):
        b = FakeBackend(size_of, spec)
        curve = RateCurve(b, IMG)
        got = search(curve, float(target))
        want = _exhaustive(b, target)
        if want is None:
            assert got is None
        else:
            assert got is not None and got.param == want
            assert got.bpp <= target
            assert got.data == b"x" * int(size_of(want))  # the real file of that parameter


def test_unreachable_target_is_none_after_one_encode():
    b = FakeBackend(lambda q: 100 + q, QUALITY)
    assert search(RateCurve(b, IMG), 1.0) is None
    assert b.calls == 1


def test_all_fit_returns_best_quality():
    b = FakeBackend(lambda qp: 10, QP)
    got = search(RateCurve(b, IMG), 100.0)
    assert got.param == 0


def test_targets_share_encodes():
    b = FakeBackend(lambda qp: 4000 * 2 ** (-qp / 6), QP)
    curve = RateCurve(b, IMG)
    for t in (0.075 * 40, 0.15 * 40, 0.3 * 40, 0.6 * 40):
        search(curve, t)
    # bisection alone would cost about 2 + 6 encodes per target
    assert b.calls < 4 * 8
    assert b.calls == curve.encodes


def test_non_monotone_curve_never_exceeds_target():
    rng = np.random.default_rng(0)
    noise = rng.integers(-8, 9, size=101)
    b = FakeBackend(lambda q: 30 + 4 * q + noise[int(q)], QUALITY)
    for target in np.linspace(5, 50, 30):
        got = search(RateCurve(b, IMG), float(target))
        assert got is None or got.bpp <= target


def test_continuous_search_lands_within_tolerance():
    spec = ParamSpec("bin_width", 0.25, 64.0, more_bits_when="lower", integer=False,
                     rel_tol=0.002)
    size_of = lambda d: 2000 / d  # noqa: E731
    for target in (2.0, 7.5, 30.0):
        got = search(RateCurve(FakeBackend(size_of, spec), IMG), target)
        # files are whole bytes: the smallest bin width that fits is just above this
        exact = 2000 / (target * 256 / 8 + 1)
        assert got.bpp <= target
        assert exact < got.param <= exact * 1.01


def test_bad_target():
    with pytest.raises(ValueError):
        search(RateCurve(FakeBackend(lambda q: q, QUALITY), IMG), 0.0)


# real codecs on sample crops: at or under the target and within 15% of it
CASES = [("jpeg", (0.6,)), ("jpeg444", (0.6,)), ("webp", (0.15, 0.6)), ("avif", (0.15, 0.6)),
         ("jxl", (0.3, 0.6)), ("hevc-bpgcfg", (0.15, 0.6))]


@pytest.mark.parametrize("name,targets", CASES)
def test_real_codecs_land_near_target(name, targets, sample_images):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    crop = center_crop(sample_images["kodim23"], 256).copy()
    curve = RateCurve(make_backend(name, BackendOptions(x265_preset="veryfast")), crop)
    for t in targets:
        got = search(curve, t)
        assert got is not None, f"{name} could not reach {t} bpp"
        assert got.bpp <= t
        assert got.bpp >= 0.85 * t, f"{name} at {t}: {got.bpp:.4f} bpp"
        assert math.isclose(got.bpp, 8 * len(got.data) / (256 * 256))


def test_jpeg_cannot_reach_very_low_rates(sample_images):
    crop = center_crop(sample_images["kodim23"], 256).copy()
    assert search(RateCurve(make_backend("jpeg"), crop), 0.075) is None


@pytest.mark.parametrize("size_of", [lambda d: 3000 / d, lambda d: 20000 / d**0.8 + 30,
                                     lambda d: 5000 * math.exp(-d / 8) + 20])
def test_continuous_search_matches_brute_force_and_shares_encodes(size_of):
    """A learned codec's bin width over its real range: the answer is the smallest bin width
    that fits, to the tolerance, and the four default targets share their encodes."""
    spec = ParamSpec("bin_width", 2.0**-4, 2.0**8, more_bits_when="lower", integer=False,
                     rel_tol=0.01)
    b = FakeBackend(size_of, spec)
    curve = RateCurve(b, IMG)
    grid = [2.0 ** (-4 + 12 * i / 20000) for i in range(20001)]
    for t in (7.5, 15.0, 30.0, 60.0):
        got = search(curve, t)
        fits = [d for d in grid if _bpp(int(size_of(d))) <= t]
        if not fits:
            assert got is None
            continue
        assert got.bpp <= t and got.data == b"x" * int(size_of(got.param))
        assert min(fits) * 0.999 <= got.param <= min(fits) * 1.0101
    assert b.calls == curve.encodes < 4 * 8  # plain bisection: about 10 per target

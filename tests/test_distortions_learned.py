"""The learned backend, with a tiny model trained in the test itself (a few dozen Adam steps)."""

import pytest

from codec.image_io import center_crop, read_image
from codec.quality import psnr
from codec.tables import read_table, resolve_path

torch = pytest.importorskip("torch")
api = pytest.importorskip("codec.api")
models = pytest.importorskip("codec.models")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, sample_images):
    torch.set_num_threads(2)
    torch.manual_seed(0)
    crop = center_crop(sample_images["kodim23"], 64)
    x = torch.from_numpy(crop.copy()).permute(2, 0, 1)[None].float() / 255
    model = models.build("bmshj2018-hyperprior", preset="tiny")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(24):
        out = model(x, 1.0)
        rate = sum(b.sum() for b in out["bits"].values()) / x[0, 0].numel()  # bits per pixel
        loss = 0.01 * rate + torch.mean((out["x_hat"] - x) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    api.save(model, path, provenance={"test": "test_distortions_learned"})
    return path


@pytest.fixture(scope="module")
def backend(checkpoint):
    from distortions.backends import BackendOptions, make_backend

    b = make_backend("learned", BackendOptions(checkpoint=str(checkpoint)))
    b.check_available()
    return b


def test_round_trip_and_rate_direction(backend, sample_images):
    crop = center_crop(sample_images["kodim03"], 64).copy()
    assert backend.name == "learned-bmshj2018-hyperprior"
    assert backend.version.startswith("ckpt-")
    fine, coarse = backend.encode(crop, 2.0**-4), backend.encode(crop, 2.0**8)
    assert len(fine) > len(coarse)  # the bin width is the rate parameter
    dec = backend.decode(fine)
    assert dec.shape == crop.shape and dec.dtype == crop.dtype
    assert (backend.decode(fine) == dec).all()
    assert psnr(crop, dec) > 0  # a few dozen steps buy no quality; the plumbing is the test


def test_rate_search_and_driver(backend, checkpoint, sample_images, tmp_path):
    from codec.datasets import resolve_data
    from distortions.backends import BackendOptions
    from distortions.ratesearch import RateCurve, search
    from distortions.run import RunConfig, run
    from distortions.schema import INDEX_COLUMNS, INDEX_ID

    crop = center_crop(sample_images["kodim03"], 64).copy()
    curve = RateCurve(backend, crop)
    top, bottom = curve.at(backend.param.lo).bpp, curve.at(backend.param.hi).bpp
    target = (top + bottom) / 2
    got = search(curve, target)
    assert got is not None and got.bpp <= target
    assert backend.param.lo < got.param < backend.param.hi  # searched, not an end

    cfg = RunConfig(out=str(tmp_path), codecs=("learned",), targets=(target,), crop=64, jobs=1,
                    progress=False, backend=BackendOptions(checkpoint=str(checkpoint)))
    report = run(resolve_data("samples")[:1], cfg)
    assert not report.errors and report.new_rows == 1
    df = read_table(tmp_path / "index.csv", INDEX_COLUMNS, INDEX_ID)
    row = df.iloc[0]
    assert row["codec"] == "learned" and row["codec_version"] == backend.version
    assert float(row["bpp"]) <= target
    stream = resolve_path(row["bitstream_path"], tmp_path / "index.csv").read_bytes()
    decoded = read_image(resolve_path(row["path"], tmp_path / "index.csv"))
    assert (backend.decode(stream) == decoded).all()


def test_missing_checkpoint_is_reported(tmp_path):
    from distortions.backends import BackendOptions, BackendUnavailable, make_backend

    b = make_backend("learned", BackendOptions(checkpoint=str(tmp_path / "none.pt")))
    with pytest.raises(BackendUnavailable, match="none.pt not found"):
        b.check_available()

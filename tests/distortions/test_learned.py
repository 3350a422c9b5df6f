"""The learned backend, with a tiny model trained in the test itself (a few dozen Adam steps)."""

import pytest

from plic.image_io import center_crop, read_image
from plic.quality import psnr
from plic.tables import read_table, resolve_path

torch = pytest.importorskip("torch")
api = pytest.importorskip("codec.api")
models = pytest.importorskip("codec.models")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, sample_images):
    torch.set_num_threads(1)  # a tiny model: two threads only contend (measured 1 s vs 48 s
    torch.manual_seed(0)        # for these steps on the shared 2-core machine)
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
    # the analysis is cached per image: the bytes are those of a fresh codec.api call, also
    # after another image went through the same backend
    other = center_crop(sample_images["kodim23"], 64).copy()
    model = api.load(backend.checkpoint)
    assert backend.encode(other, 0.5) == api.compress(other, model, bin_width=0.5)
    assert backend.encode(crop, 0.5) == api.compress(crop, model, bin_width=0.5)
    assert backend.encode(crop, 2.0**-4) == fine


def test_rate_search_and_driver(backend, checkpoint, sample_images, tmp_path):
    from distortions.backends import BackendOptions
    from distortions.ratesearch import RateCurve, search
    from distortions.run import DistortionsConfig, run
    from distortions.schema import INDEX_COLUMNS, INDEX_ID
    from plic.datasets import resolve_data

    crop = center_crop(sample_images["kodim03"], 64).copy()
    curve = RateCurve(backend, crop)
    top, bottom = curve.at(backend.param.lo).bpp, curve.at(backend.param.hi).bpp
    target = (top + bottom) / 2
    got = search(curve, target)
    assert got is not None and got.bpp <= target
    assert backend.param.lo < got.param < backend.param.hi  # searched, not an end

    cfg = DistortionsConfig(out=str(tmp_path), codecs=("learned",), targets=(target,), crop=64,
                            jobs=1, progress=False,
                            backend=BackendOptions(checkpoint=str(checkpoint)))
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


# ---- learned codecs by default: every codec checkpoint of a folder -----------------------------

@pytest.fixture
def one_image(tmp_path, sample_images):
    from plic.image_io import write_png

    d = tmp_path / "refs"
    d.mkdir()
    write_png(d / "kodim03.png", center_crop(sample_images["kodim03"], 64).copy())
    return d


def _run_cli(argv, capsys):
    from distortions.__main__ import main

    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _codecs_in(out):
    from distortions.schema import INDEX_COLUMNS, INDEX_ID

    return set(read_table(out / "index.csv", INDEX_COLUMNS, INDEX_ID)["codec"])


def test_checkpoints_folder_gives_one_learned_codec_each(checkpoint, one_image, tmp_path, capsys):
    import shutil

    ckdir = tmp_path / "checkpoints"
    ckdir.mkdir()
    shutil.copy(checkpoint, ckdir / "alpha.pt")
    # a second, different checkpoint: same architecture, other weights
    m = api.load(checkpoint)
    with torch.no_grad():
        next(m.parameters()).mul_(0.5)
    api.save(m, ckdir / "beta v2.pt")
    (ckdir / "state.pt").write_bytes(b"not a checkpoint")  # skipped with a line
    out = tmp_path / "out"
    base = ["--data", str(one_image), "--targets", "2.5", "--jobs", "1", "--no-progress",
            "--x265-preset", "ultrafast", "--checkpoint-dir", str(ckdir)]
    rc, text, err = _run_cli(base + ["--out", str(out)], capsys)
    assert rc == 0, err
    assert f"learned codecs from {ckdir}: learned-alpha" in text and "learned-beta-v2" in text
    assert "state.pt: not used" in text
    codecs = _codecs_in(out)
    assert {"learned-alpha", "learned-beta-v2"} <= codecs
    assert {"jpeg", "webp", "hevc-bpgcfg"} <= codecs  # the classic defaults are still there
    from distortions.schema import INDEX_COLUMNS, INDEX_ID

    df = read_table(out / "index.csv", INDEX_COLUMNS, INDEX_ID)
    versions = df[df["codec"].str.startswith("learned-")].groupby("codec")["codec_version"].first()
    assert versions["learned-alpha"] != versions["learned-beta-v2"]  # the weights' hashes

    # --codecs still selects: no learned codec unless named
    out2 = tmp_path / "out2"
    rc, text, _ = _run_cli(base + ["--out", str(out2), "--codecs", "jpeg"], capsys)
    assert rc == 0 and _codecs_in(out2) == {"jpeg"} and "learned codecs" not in text
    rc, _, _ = _run_cli(base + ["--out", str(out2), "--codecs", "jpeg,learned-beta-v2"], capsys)
    assert rc == 0 and _codecs_in(out2) == {"jpeg", "learned-beta-v2"}
    rc, _, err = _run_cli(base + ["--out", str(out2), "--codecs", "learned-gamma"], capsys)
    assert rc == 2 and "learned-gamma: no such learned codec" in err

    # a repeatable --checkpoint overrides the folder; NAME=PATH labels it
    out3 = tmp_path / "out3"
    rc, text, _ = _run_cli(base + ["--out", str(out3), "--codecs", "learned", "--checkpoint",
                                   f"mine={ckdir / 'alpha.pt'}"], capsys)
    assert rc == 0 and "learned codecs from --checkpoint: learned-mine" in text
    assert _codecs_in(out3) == {"learned-mine"}
    # two files that would share a name: refused, with the fix
    other = tmp_path / "x" / "alpha.pt"
    other.parent.mkdir()
    shutil.copy(checkpoint, other)
    rc, _, err = _run_cli(base + ["--out", str(out3), "--checkpoint", str(ckdir / "alpha.pt"),
                                  "--checkpoint", str(other)], capsys)
    assert rc == 2 and "NAME=PATH" in err


def test_no_checkpoints_skips_learned_with_one_line(one_image, tmp_path, capsys):
    empty = tmp_path / "none"
    empty.mkdir()
    base = ["--data", str(one_image), "--targets", "2.5", "--jobs", "1", "--no-progress",
            "--checkpoint-dir", str(empty), "--out", str(tmp_path / "out")]
    rc, text, err = _run_cli(base + ["--codecs", "jpeg,learned"], capsys)
    assert rc == 1 and "no codec checkpoint found" in err  # asked for, not there: an error
    assert _codecs_in(tmp_path / "out") == {"jpeg"}  # ... and the rest still ran
    rc, text, err = _run_cli(base + ["--x265-preset", "ultrafast"], capsys)
    lines = [ln for ln in text.splitlines() if "learned" in ln]
    assert rc == 0 and len(lines) == 1 and "none" in lines[0] and "skipped" in lines[0]
    assert not any(c.startswith("learned") for c in _codecs_in(tmp_path / "out"))

"""Training the HEVC post-decoder (codec.train.postdecode) on the tiny preset: pairs cache,
run directory, exact resume, ship (no absolute paths), the command line."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from codec import postdecode as pd
from codec.train.postdecode.config import PostDecodeConfig
from codec.train.postdecode.loop import train
from codec.train.postdecode.pairs import build_pairs
from codec.train.postdecode.ship import ship
from codec.train.rundir import read_metrics
from plic.checkpoint import load_checkpoint
from plic.datasets import scan_folder
from plic.image_io import write_png

from ...forge import ToyMetric

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("pd-data")
    rng = np.random.default_rng(0)
    for split, n in (("train", 2), ("val", 1)):
        (root / split).mkdir()
        for i in range(n):
            yy, xx = np.mgrid[0:56, 0:72]
            img = np.stack([xx * 3 + i * 40, yy * 4, (xx + yy) * 2], -1) % 256
            img = np.clip(img + rng.integers(-25, 26, img.shape), 0, 255).astype(np.uint8)
            write_png(root / split / f"im{i}.png", img)
    return root


def tiny(root, out, **kw) -> PostDecodeConfig:
    base = dict(preset="tiny", steps=8, data=str(root / "train"), data_split="",
                val_data=str(root / "val"), val_split="", val_images=1, qps=[40, 46],
                val_qps=[44], pairs=str(root / "pairs"), x265_preset="ultrafast",
                perceptual_start=0.0, adversarial_start=0.25, val_every=4, out=str(out))
    return PostDecodeConfig(**{**base, **kw})


def test_pairs_are_the_codec_decodes_and_cached(folders):
    from codec import hevc
    from plic.image_io import read_image

    recs = scan_folder(folders / "train")
    pairs = build_pairs(recs, (40,), folders / "pairs", preset="ultrafast", progress=False)
    img = read_image(recs[0].path)
    expect = hevc.decode(hevc.encode(img, 40, preset="ultrafast"))
    assert np.array_equal(read_image(pairs[0].decoded[40]), expect)
    stamp = pairs[0].decoded[40].stat().st_mtime_ns
    build_pairs(recs, (40,), folders / "pairs", preset="ultrafast", progress=False)
    assert pairs[0].decoded[40].stat().st_mtime_ns == stamp  # not coded again


def test_tiny_run_trains_resumes_exactly_and_ships(folders, tmp_path):
    res = train(tiny(folders, tmp_path / "straight"), metric=ToyMetric(), progress=False)
    assert res["step"] == 8
    rows = [r for r in read_metrics(tmp_path / "straight") if "loss" in r]
    assert {r["stage"] for r in rows} == {"perceptual", "adversarial"}
    assert all(np.isfinite(r["loss"]) for r in rows) and "d_loss" in rows[-1]
    val = [r["val"] for r in read_metrics(tmp_path / "straight") if "val" in r][-1]
    assert {"qp44_psnr", "qp44_psnr_hevc", "qp44_perceptual"} <= set(val)

    train(tiny(folders, tmp_path / "cut", stop_at=3), metric=ToyMetric(), progress=False)
    train(tiny(folders, tmp_path / "cut", resume=True), metric=ToyMetric(), progress=False)
    a = load_checkpoint(tmp_path / "straight" / "last.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "cut" / "last.pt")["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], pd.build({"channels": 8, "blocks": 1}).state_dict()[k])
               for k in a)  # it trained

    with pytest.raises(ValueError, match="different configuration: k_gan"):
        train(tiny(folders, tmp_path / "cut", resume=True, k_gan=0.5), metric=ToyMetric(),
              progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny(folders, tmp_path / "cut"), metric=ToyMetric(), progress=False)

    info = ship(tmp_path / "straight", tmp_path / "shipped.pt")
    assert info["size_mb"] < 20 and info["steps"] == 8
    ck = load_checkpoint(tmp_path / "shipped.pt", kind="postdecode")
    assert ck["provenance"]["command"].startswith("python -m codec.train.postdecode ")

    def strings(o):
        if isinstance(o, dict):
            for v in o.values():
                yield from strings(v)
        elif isinstance(o, (list, tuple)):
            for v in o:
                yield from strings(v)
        elif isinstance(o, str):
            yield o
    absolute = [s for s in strings(ck["provenance"]) if s.startswith("/")]
    assert not absolute, absolute
    model = pd.load(tmp_path / "shipped.pt")
    assert model.config == {"channels": 8, "blocks": 1, "scale": 2, "qp_hidden": 64}


def test_cli_runs_with_a_fitted_metric_file_and_refuses_a_missing_one(folders, tmp_path,
                                                                       capsys):
    from codec.train.postdecode.__main__ import main
    from perceptual_metric.lpips_model import LPIPS
    from plic.checkpoint import save_checkpoint

    torch.manual_seed(0)
    m = LPIPS("alex", "lin")
    save_checkpoint(tmp_path / "metric.pt", "metric", "lpips-alex-fitted", m.config(),
                    m.state_dict(), {"labels_sha256": "test"})
    c = tiny(folders, tmp_path / "run", steps=2, val_every=2)
    argv = ["--preset", "tiny", "--steps", "2", "--data", c.data, "--data-split", "",
            "--val-data", c.val_data, "--val-split", "", "--val-images", "1", "--qps", "40",
            "--val-qps", "40", "--pairs", c.pairs, "--x265-preset", "ultrafast",
            "--out", c.out, "--ship", str(tmp_path / "pd.pt")]
    assert main(argv + ["--lpips", str(tmp_path / "metric.pt")]) == 0
    assert "step 2; validation" in capsys.readouterr().out
    ck = load_checkpoint(tmp_path / "pd.pt", kind="postdecode")
    assert len(ck["provenance"]["metric_sha256"]) == 64
    assert main(argv[:-4] + ["--out", str(tmp_path / "r2"), "--lpips",
                             str(tmp_path / "nope.pt")]) == 2
    assert "no such metric checkpoint" in capsys.readouterr().err


def test_init_continues_from_a_run_with_a_new_schedule(folders, tmp_path):
    from plic.fsio import sha256_file

    train(tiny(folders, tmp_path / "a", steps=2, val_every=2), metric=ToyMetric(),
          progress=False)
    train(tiny(folders, tmp_path / "b", steps=2, val_every=2, init=str(tmp_path / "a")),
          metric=ToyMetric(), progress=False)
    prov = load_checkpoint(tmp_path / "b" / "last.pt")["provenance"]
    assert prov["init_from"]["sha256"] == sha256_file(tmp_path / "a" / "last.pt")
    assert prov["init_from"]["step"] == 2
    with pytest.raises(ValueError, match="pass the same --channels"):
        train(tiny(folders, tmp_path / "c", steps=2, channels=4, init=str(tmp_path / "a")),
              metric=ToyMetric(), progress=False)

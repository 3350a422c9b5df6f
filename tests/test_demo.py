"""``make demo`` end to end in its reduced setting (``DEMO_FAST=1``) on two small crops of the
sample images: distortions -> trials -> the real HIT server answered by the simulated crowd ->
labels -> metric fit -> a few training steps -> compress/decompress -> the evaluation report.
The outputs are checked against what each stage promises, not against fixed numbers."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from plic.image_io import read_image, write_png
from plic.tables import read_table, resolve_path
from tests.conftest import REPO

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def demo(tmp_path_factory, sample_images):
    d = tmp_path_factory.mktemp("demo")
    imgs = d / "imgs"
    for name in ("kodim03", "kodim23"):  # 256 x 384 crops: 5 MS-SSIM scales, fast codecs
        write_png(imgs / f"{name}.png", sample_images[name][128:384, 192:576].copy())
    out = d / "out"
    env = {**os.environ, "DEMO_OUT": str(out), "DEMO_FAST": "1", "DEMO_THREADS": "1",
           "DEMO_LEARNED": "0", "PY": sys.executable, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh"), "--data", str(imgs)],
                          env=env, capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, imgs, proc.stdout


def test_every_stage_says_what_it_does_and_the_last_line_is_the_report(demo):
    out, _, stdout = demo
    for stage in ("0. checks", "1. distortions", "2. trials", "3. study server",
                  "4. SIMULATED crowd", "5. aggregation", "6. metric", "7. training",
                  "8. codec", "9. evaluation"):
        assert f"== {stage}" in stdout, stage
    last = stdout.strip().splitlines()[-1]
    assert str(out / "eval" / "report.html") in last
    assert f"file://{(out / 'eval' / 'report.html').resolve()}" in last and "open" in last
    assert (out / "eval" / "report.html").is_file()
    # the stage times are listed at the end, one line per stage
    times = stdout[stdout.index("stage times"):]
    for stage in ("0. checks", "1. distortions", "7. training", "9. evaluation"):
        assert stage in times
    # the requester's dashboard of the study (issue 30): its command, with a secret file
    assert f"-m mturk.dashboard --db {out / 'study' / 'judgments.sqlite'}" in times
    assert (out / "study" / "dashboard.secret").stat().st_mode & 0o077 == 0


def test_every_stage_works_on_the_centre_crops(demo):
    from plic.datasets import read_manifest

    out, imgs, stdout = demo
    crops = read_manifest(out / "images" / "imgs-crop256.csv")
    assert [r.id for r in crops] == ["kodim03", "kodim23"]
    assert all((r.width, r.height) == (256, 256) for r in crops)
    # stage 7 measured the codecs of step 1 beside the training; step 9 reused those values
    assert "cached:" in (out / "eval-step1.log").read_text()


def test_study_labels_come_from_the_simulated_crowd(demo):
    from mturk.schema import LABELS_COLUMNS, TRIALS_COLUMNS

    out, _, _ = demo
    study = out / "study"
    trials = read_table(study / "trials.csv", TRIALS_COLUMNS, "trial_id")
    labels = read_table(study / "labels.csv", LABELS_COLUMNS, "trial_id")
    tests = trials[trials.kind == "test"]
    assert 1 <= len(labels) <= len(tests)
    assert set(labels.trial_id) <= set(tests.trial_id)  # sentinels are not labels
    p_b, n = labels.p_b.astype(float), labels.n.astype(int)
    assert ((p_b >= 0) & (p_b <= 1)).all() and (n >= 1).all()
    agg = json.loads((study / "aggregate.json").read_text())
    assert agg["simulated"] is True and agg["labels"] == len(labels)
    crowd = json.loads((study / "simulated_crowd.json").read_text())
    assert crowd["simulated"] is True


def test_metric_and_codec_checkpoints_load_and_work(demo):
    import perceptual_metric
    from codec import api
    from plic.checkpoint import load_checkpoint

    out, imgs, _ = demo
    metric = perceptual_metric.load(out / "metric.pt")
    ref = read_image(out / "images" / "kodim03.png")  # the centre crop every stage used
    x = torch.from_numpy(ref).permute(2, 0, 1)[None].float() / 255
    noisy = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    with torch.inference_mode():
        assert float(metric(x, x).reshape(-1)[0]) == pytest.approx(0, abs=1e-6)
        assert float(metric(x, noisy).reshape(-1)[0]) > 0
    ck = load_checkpoint(out / "metric.pt", kind="metric")
    assert ck["provenance"]["simulated_labels"] is True
    best = out / "train" / "best.pt"
    ck = load_checkpoint(best, kind="codec")
    assert float(ck["config"]["target_bpp"]) == 0.15
    # stage 8: the stream decodes to the image's size, at or under its target
    stream = out / "codec" / "kodim03.plic"
    assert 8 * stream.stat().st_size / (ref.shape[0] * ref.shape[1]) <= 0.15
    dec = api.decompress(stream.read_bytes(), api.load(best))
    assert dec.shape == ref.shape and dec.dtype == ref.dtype
    # the CLI decoded with 1 thread; the synthesis transform is float, so another thread count
    # may move a rare pixel by one level (the entropy decoding itself is exact)
    diff = np.abs(read_image(out / "codec" / "kodim03.png").astype(int) - dec)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_evaluation_rates_are_real_and_under_target(demo):
    from codec.evaluate.report import RESULT_COLUMNS

    out, _, _ = demo
    table = out / "eval" / "results.csv"
    df = read_table(table, RESULT_COLUMNS, "row_id")
    assert {"ours-demo-tiny", "jpeg", "webp", "hevc-bpgcfg"} <= set(df.method)
    ok = df[df.status == "ok"]
    assert len(ok[ok.method == "ours-demo-tiny"]) == 2  # both images at the 0.15 track
    assert len(ok[ok.method == "hevc-bpgcfg"]) == 4     # 2 images x 2 targets
    for _, r in ok.iterrows():
        stream = resolve_path(r.bitstream_path, table)
        dec = read_image(resolve_path(r.decoded_path, table))
        h, w = dec.shape[:2]
        assert float(r.bpp) == pytest.approx(8 * stream.stat().st_size / (h * w))
        assert float(r.bpp) <= float(r.target_bpp)
        assert float(r.psnr) > 0 and 0 <= float(r.ms_ssim) <= 1
        assert float(r.lpips_alex) >= 0 and float(r.metric_fitted) >= 0
    # the classic codecs came from the demo's distortions cache: same decoded files
    from distortions.schema import INDEX_COLUMNS

    index = read_table(out / "distortions" / "index.csv", INDEX_COLUMNS, "dist_id")
    cached = {resolve_path(p, out / "distortions" / "index.csv").resolve() for p in index.path}
    classic = ok[ok.kind == "classic"]
    assert {resolve_path(p, table).resolve() for p in classic.decoded_path} <= cached


def test_every_output_says_simulated(demo):
    out, _, _ = demo
    ev = out / "eval"
    assert "SIMULATED" in (ev / "table.md").read_text()
    assert "SIMULATED" in (ev / "report.html").read_text()
    meta = json.loads((ev / "results.json").read_text())["meta"]
    assert "simulated crowd" in meta["simulated"]
    dists = importlib.util.find_spec("DISTS_pytorch") is not None  # the wheel with its weights
    for name in ("rd_psnr.png", "rd_ms_ssim.png", "rd_lpips.png") + ("rd_dists.png",) * dists:
        assert (ev / name).stat().st_size > 0


def test_demo_fails_loudly_when_a_stage_is_missing(tmp_path):
    """Without perceptual_metric.fit the demo stops before any work, with a message."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'perceptual_metric.fit':\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, _Hide())\n")
    out = tmp_path / "out"
    env = {**os.environ, "DEMO_OUT": str(out), "PY": sys.executable,
           "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "perceptual_metric.fit" in proc.stderr and "error" in proc.stderr
    assert not (out / "distortions").exists()  # nothing ran


def test_demo_oracle_is_codec_quality_ms_ssim_in_float32(sample_images):
    from plic.quality import ms_ssim
    from plic.quality import ms_ssim_f32 as ms_ssim_oracle  # --oracle plic.quality:ms_ssim_f32

    ref = sample_images["kodim03"][:256, :384]
    rng = np.random.default_rng(0)
    for sigma in (2, 20):
        img = np.clip(ref + rng.normal(0, sigma, ref.shape), 0, 255).astype(np.uint8)
        assert ms_ssim_oracle(ref, img) == pytest.approx(ms_ssim(ref, img), abs=1e-5)
    assert ms_ssim_oracle(ref, ref) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="differ in shape"):
        ms_ssim_oracle(ref, ref[:128])

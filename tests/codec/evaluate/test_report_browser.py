"""The evaluation's report.html in headless Chromium (Debian's, driven by Playwright; never a
download): every image loads, Table 1 renders with one row per method and target, the RD plots
are there, and the side-by-side crops are shown at 1:1. Set PLIC_REPORT_SCREENSHOT=FILE.png to
keep a full-page screenshot."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from plic.image_io import write_png

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
CROP = 128


@pytest.fixture(scope="module")
def report(tmp_path_factory, sample_images):
    from codec.evaluate.cli import main

    d = tmp_path_factory.mktemp("report")
    for i, img in enumerate(list(sample_images.values())[:2]):
        write_png(d / "imgs" / f"im{i}.png", img[128:384, :384].copy())
    argv = ["--data", str(d / "imgs"), "--classic", "jpeg,webp", "--classic-targets", "0.3,0.6",
            "--lpips", "alex", "--fid-plain-grid", "--crop-size", str(CROP),
            "--out", str(d / "out"), "--dist-cache", str(d / "dist"), "--no-progress"]
    assert main(argv) == 0
    return d / "out" / "report.html"


@pytest.fixture(scope="module")
def page(report):
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("chromium not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
        pg.goto(report.as_uri())
        pg.wait_for_load_state("load")
        yield pg
        if os.environ.get("PLIC_REPORT_SCREENSHOT"):
            pg.screenshot(path=os.environ["PLIC_REPORT_SCREENSHOT"], full_page=True)
        browser.close()


def test_every_image_loads(page):
    imgs = page.eval_on_selector_all(
        "img", "els => els.map(e => [e.getAttribute('src'), e.complete, e.naturalWidth])")
    assert len(imgs) >= 2 + 2 * 2 * 3  # plots, then 2 images x 2 targets x (original + 2)
    broken = [src for src, done, w in imgs if not (done and w > 0)]
    assert broken == []


def test_table1_renders_every_method_and_target(page):
    head = page.eval_on_selector_all("#table1 tr:first-child th", "els => els.map(e => "
                                     "e.textContent.trim())")
    assert head[:3] == ["method", "trained with", "target"]
    assert "DISTS" in head and any(h.startswith("FID (") for h in head)
    body = page.eval_on_selector_all("#table1 tr", "els => els.slice(1).map(r => "
                                     "Array.from(r.cells).map(c => c.textContent.trim()))")
    assert sorted((r[0], r[2]) for r in body) == [("jpeg", "0.3"), ("jpeg", "0.6"),
                                                  ("webp", "0.3"), ("webp", "0.6")]
    assert all(len(r) == len(head) for r in body)
    # the table's box is laid out and visible
    box = page.locator("#table1").bounding_box()
    assert box and box["width"] > 400 and box["height"] > 60


def test_rd_plots_are_present(page):
    plots = page.eval_on_selector_all(
        "img.plot", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth, "
                    "e.getBoundingClientRect().width])")
    srcs = {p[0] for p in plots}
    assert {"rd_psnr.png", "rd_ms_ssim.png", "rd_lpips.png"} <= srcs
    assert all(w > 300 and shown > 300 for _, w, shown in plots)


def test_crops_side_by_side_at_one_to_one(page):
    tiles = page.eval_on_selector_all(
        ".strip img.tile", "els => els.map(e => [e.naturalWidth, e.naturalHeight, "
                           "e.clientWidth, e.clientHeight])")  # content box: no border
    assert len(tiles) == 2 * 2 * 3
    for nw, nh, w, h in tiles:
        assert (nw, nh) == (CROP, CROP) and (w, h) == (CROP, CROP)  # one pixel per CSS pixel
    # each strip is one row: the original and both codecs side by side at the same height
    tops = page.eval_on_selector_all(
        ".strip", "els => els.map(s => Array.from(s.querySelectorAll('img.tile'))"
                  ".map(i => Math.round(i.getBoundingClientRect().top)))")
    assert tops and all(len(set(t)) == 1 for t in tops)

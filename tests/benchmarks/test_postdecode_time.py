"""benchmarks.postdecode_time: decode time of hevc-bpgcfg-pd beside plain HEVC, the stage's
share."""

from __future__ import annotations

import json
import shutil

import pytest

from benchmarks import postdecode_time
from benchmarks.sample_image import NoSuchImage, pick_image
from codec import postdecode as pd

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


@needs_ffmpeg
def test_postdecode_time_runs_and_reports_the_stage(tmp_path):
    try:
        pick_image("kodim03")
    except (NoSuchImage, OSError, ValueError):
        pytest.skip("needs the sample images")
    ckpt = pd.save(pd.build({"channels": 8, "blocks": 1}), tmp_path / "pd.pt")
    assert postdecode_time.main(["--model", str(ckpt), "--repeat", "1",
                                 "--out", str(tmp_path)]) == 0
    rep = json.loads((tmp_path / "bench_postdecode.json").read_text())
    assert rep["size"] == "768x512" and rep["stage_cpu_s"] > 0 and rep["pd_cpu_s"] > 0

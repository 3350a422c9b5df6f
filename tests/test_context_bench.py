"""The context benchmark runs end to end on a crop and checks its own decodes."""

from __future__ import annotations

import json

from codec.context import bench


def test_bench_runs_on_a_crop(tmp_path):
    assert bench.main(["--presets", "tiny", "--rate-preset", "tiny", "--rate-images", "1",
                       "--crop", "128", "--out", str(tmp_path)]) == 0
    rep = json.loads((tmp_path / "context.json").read_text())
    row = rep["decode"][0]
    assert row["wavefront_steps"] == 3 * (32 - 1) + 32 and row["serial_steps"] == 32 * 32
    assert (tmp_path / "context.md").read_text().startswith("# Context model benchmark")

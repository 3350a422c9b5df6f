"""The context benchmark runs end to end on a crop and checks its own decodes."""

from __future__ import annotations

import json

from benchmarks import context_model


def test_bench_runs_on_a_crop(tmp_path):
    assert context_model.main(["--presets", "tiny", "--rate-preset", "tiny", "--rate-images", "1",
                       "--crop", "128", "--train-steps", "2", "--out", str(tmp_path)]) == 0
    rep = json.loads((tmp_path / "context.json").read_text())
    row = rep["decode"][0]
    assert row["wavefront_steps"] == 3 * (32 - 1) + 32 and row["serial_steps"] == 32 * 32
    rates = rep["rate_cost"]
    assert [r["train_steps"] for r in rates] == [0, 2]
    assert all(r["int_bits"] > 0 and r["float_bits"] > 0 for r in rates)
    assert rates[0]["int_bits"] != rates[1]["int_bits"]  # the quick training changed the model
    assert (tmp_path / "context.md").read_text().startswith("# Context model benchmark")


def test_rate_cost_of_a_checkpoint(tmp_path):
    from codec import api, models

    ckpt = api.save(models.build("mbt2018", "tiny"), tmp_path / "m.pt")
    assert context_model.main(["--no-decode", "--rate-preset", "tiny", "--rate-images", "2",
                       "--crop", "128", "--checkpoint", str(ckpt), "--out", str(tmp_path)]) == 0
    rep = json.loads((tmp_path / "context.json").read_text())
    assert rep["decode"] == []
    rows = [r for r in rep["rate_cost"] if r["preset"] == "mbt2018 m.pt"]
    assert [r["image"] for r in rows] == ["kodim03", "kodim09", "all 2"]
    assert abs(rows[2]["int_bits"] - rows[0]["int_bits"] - rows[1]["int_bits"]) < 0.11
    assert all(r["int_bits"] > 0 and abs(r["cost_percent"]) < 5 for r in rows)

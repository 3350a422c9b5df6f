"""mturk.sim.rating_report: a simulated ACR study end to end, scored against the simulation."""

from __future__ import annotations

import json

from mturk.sim.rating_report import main
from mturk.sim.toy_index import make_toy_index


def test_rating_report_end_to_end(tmp_path, capsys):
    index = make_toy_index(tmp_path / "dist", n_refs=3, size=32,
                           qualities=(5, 10, 20, 35, 50, 70, 90))
    out = tmp_path / "rep"
    assert main(["--index", str(index), "--out", str(out), "--workers", "24", "--oracle",
                 "psnr", "--mix", "careful=0.75,random=0.25", "--batch-size", "16"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("SIMULATED ACR study") and "python -m mturk.sim.rating_report" in md
    rep = json.loads((out / "rating_report.json").read_text())
    s = rep["scores"]
    assert rep["simulated"] and s["spammers"] == 6 and s["careful"] == 18
    assert s["stimuli"] == 21 and s["mean_n"] > 15          # every worker rated every batch
    # the measures are shares and errors of the right kind, and the model beats chance
    for k in ("spammer_rejection_share", "careful_rejection_share", "mos_coverage",
              "sureal_coverage"):
        assert 0 <= s[k] <= 1
    assert s["bias_rmse"] < s["bias_sd_true"] and s["bias_corr"] > 0.8
    assert (out / "study" / "mos.csv").is_file() and (out / "study" / "codec_mos.png").is_file()


def test_rating_report_refuses_bad_input_in_one_line(tmp_path, capsys):
    assert main(["--index", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mturk.sim.rating_report: error:") and "\n" not in err
    assert not (tmp_path / "o").exists()

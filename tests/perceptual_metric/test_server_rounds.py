"""Rounds through the real server with the SIMULATED crowd (perceptual_metric.server_rounds),
tiny."""

from __future__ import annotations

import json

import pytest
import torch

from mturk.active.acquire import settled
from mturk.schema import LABELS_COLUMNS, LABELS_ID, TRIALS_COLUMNS, TRIALS_ID
from mturk.sim.toy_index import make_toy_index
from perceptual_metric.server_rounds import RoundsConfig, main, run_rounds
from perceptual_metric.trunks import WeightsError
from plic.checkpoint import load_checkpoint
from plic.tables import read_table

torch.set_num_threads(1)


def test_two_active_rounds_on_the_server_resume_and_skip_settled_pairs(tmp_path,
                                                                       sample_images):
    idx = make_toy_index(tmp_path / "idx", images=sample_images, n_refs=2, size=48,
                         qualities=(5, 20, 40, 70, 95), target_bpps=(1.0,))
    cfg = RoundsConfig(index=str(idx), study=str(tmp_path / "study"), rounds=1, round_trials=6,
                       workers=3, batch_size=8, crop=32, patch=32, steps=10)
    try:
        first = run_rounds(cfg, log=lambda *_: None)
    except WeightsError as e:
        pytest.skip(f"no ImageNet AlexNet weights here: {e}")
    study = tmp_path / "study"
    r1, r2 = study / "r001", study / "r002"
    assert [s["round"] for s in first] == ["r001"] and (r1 / "predictions.csv").is_file()
    assert json.loads((study / "aggregate.json").read_text())["simulated"] is True
    lab = read_table(study / "labels.csv", LABELS_COLUMNS, LABELS_ID)
    done = set(lab.trial_id[settled(lab.p_b.astype(float), lab.n.astype(int))])
    stamp = {p.name: p.stat().st_mtime_ns for p in r1.iterdir() if p.is_file()}

    cfg.rounds = 2                                 # resume: round 1 is kept, round 2 runs
    second = run_rounds(cfg, log=lambda *_: None)
    assert [s["round"] for s in second] == ["r002"]
    assert {p.name: p.stat().st_mtime_ns for p in r1.iterdir() if p.is_file()} == stamp
    t2 = read_table(r2 / "trials.csv", TRIALS_COLUMNS, TRIALS_ID)
    asked = set(t2.trial_id[(t2.kind == "test") & (t2.repeat_of == "")])
    assert asked and not asked & done              # settled pairs are not asked again
    fit_cfg = load_checkpoint(r2 / "metric.pt", "metric")["config"]["fit"]
    assert fit_cfg["init"] == str(r1 / "metric.pt")   # warm start from the last round
    merged = read_table(study / "labels.csv", LABELS_COLUMNS, LABELS_ID)
    assert merged.n.astype(int).sum() >= lab.n.astype(int).sum()
    assert run_rounds(cfg, log=lambda *_: None) == []  # nothing left to do


def test_cli_help_and_bad_input(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "--round-trials" in capsys.readouterr().out
    assert main(["--strategy", "best", "--study", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("perceptual_metric.server_rounds: error:") and "\n" not in err

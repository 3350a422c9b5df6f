"""Opinion scores: BT.500 screening on a hand-worked example, hidden-reference removal, the
SUREAL bias model, intervals, and mturk.mos end to end on a simulated ACR crowd."""

from __future__ import annotations

import math
import threading

import numpy as np
import pandas as pd
import pytest

from mturk.analysis.mos import codec_table, differential_scores, main, mean_ci, stimulus_scores
from mturk.analysis.screening import C_OTHER, bt500_screen, stimulus_stats
from mturk.analysis.sureal import fit_sureal

# The hand-worked example: 10 observers O1..O10 score 8 stimuli A..H (5-point scale).
# O9 is biased low, O10 answers at random, O8 gives one odd score on a leptokurtic stimulus.
SCORES = {   # stimulus: scores of O1..O10
    "A": [3, 3, 4, 3, 3, 2, 3, 3, 2, 5],
    "B": [3, 4, 3, 3, 3, 4, 3, 3, 2, 1],
    "C": [5, 5, 4, 5, 4, 5, 4, 5, 3, 5],
    "D": [4, 5, 4, 5, 3, 4, 5, 4, 2, 5],
    "E": [1, 1, 1, 1, 4, 1, 1, 1, 1, 5],
    "F": [4, 4, 5, 4, 5, 4, 5, 4, 2, 1],
    "G": [3, 3, 3, 3, 3, 3, 3, 1, 3, 3],
    "H": [2, 2, 3, 2, 2, 3, 2, 4, 2, 2],
}
# Worked by hand with BT.500's formulas (S with N - 1; beta2 = m4 / m2^2 with N):
#   A: sum 31, mean 3.1, sum d^2 = 2(1.21) + 6(0.01) + 0.81 + 3.61 = 6.9, S = sqrt(6.9/9) = 0.8756
#      m2 = 0.69, m4 = (2(1.4641) + 6(0.0001) + 0.6561 + 13.0321)/10 = 1.6617,
#      beta2 = 1.6617 / 0.4761 = 3.490 -> normal, c = 2: high >= 4.851 (O10's 5), low <= 1.349
#   B: mean 2.9, S 0.8756, beta2 3.490: low <= 1.149 (O10's 1)
#   C: mean 4.5, sum d^2 = 4.5, S = 0.7071, beta2 = 0.5625/0.2025 = 2.778: low <= 3.086 (O9's 3)
#   D: mean 4.1, sum d^2 = 8.9, S = 0.9944, beta2 = 2.971: low <= 2.111 (O9's 2)
#   E: mean 1.7, sum d^2 = 20.1, S = 1.4944, beta2 = 3.676: high >= 4.689 (O10's 5)
#   F: mean 3.8, sum d^2 = 15.6, S = 1.3166, beta2 = 3.213: low <= 1.167 (O10's 1)
#   G: mean 2.8, sum d^2 = 3.6, S = 0.6325, m2 = 0.36, m4 = (9(0.0016) + 10.4976)/10 = 1.0512,
#      beta2 = 8.111 -> not normal, c = sqrt(20): low <= -0.028: nobody (O8's 1 would be an
#      outlier with c = 2, at <= 1.535)
#   H: mean 2.4, sum d^2 = 4.4, S = 0.6992, beta2 = 3.612: high >= 3.798 (O8's 4)
# Counts over n = 8 scores each: O10 P=2 (A, E), Q=2 (B, F): (P+Q)/n = 0.5 > 0.05 and
# |P-Q|/(P+Q) = 0 < 0.3 -> rejected. O9 P=0, Q=2 (C, D): 0.25 > 0.05 but asymmetry 1 -> kept
# (a bias, not noise). O8 P=1 (H), Q=0 -> asymmetry 1 -> kept. O1..O7: no outliers -> kept.
HAND = {"A": (3.1, 0.8756, 3.490), "C": (4.5, 0.7071, 2.778), "G": (2.8, 0.6325, 8.111),
        "H": (2.4, 0.6992, 3.612)}
HAND_PQ = {"O8": (1, 0), "O9": (0, 2), "O10": (2, 2)}


def example_frame() -> pd.DataFrame:
    return pd.DataFrame([dict(worker_id=f"O{i + 1}", stimulus_id=s, score=v)
                         for s, vs in SCORES.items() for i, v in enumerate(vs)])


def test_bt500_statistics_match_the_hand_worked_example():
    for s, (mean, sd, beta2) in HAND.items():
        st = stimulus_stats(SCORES[s])
        assert (st.mean, st.sd, st.kurtosis) == pytest.approx((mean, sd, beta2), abs=6e-4)
    assert stimulus_stats(SCORES["G"]).c == C_OTHER and stimulus_stats(SCORES["A"]).c == 2


def test_bt500_screening_matches_the_hand_worked_example():
    res = bt500_screen(example_frame())
    for w in res.index:
        assert (res.P[w], res.Q[w]) == HAND_PQ.get(w, (0, 0)), w
    assert list(res.index[res.rejected]) == ["O10"]
    assert res.n.eq(8).all() and res.outlier_share["O10"] == 0.5
    # no stimulus takes part when each needs more scores than it has
    assert not bt500_screen(example_frame(), min_scores=11).rejected.any()


def test_mean_ci_is_the_student_t_interval():
    m, h = mean_ci([1, 2, 3, 4, 5])
    # s = sqrt(2.5), t(0.975, 4) = 2.7764451
    assert m == 3 and h == pytest.approx(2.7764451 * math.sqrt(2.5) / math.sqrt(5), rel=1e-6)
    assert math.isnan(mean_ci([4])[1]) and mean_ci([4])[0] == 4
    # coverage: 95% intervals of normal samples cover the true mean about 95% of the time
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(2000):
        x = rng.normal(3, 1, 8)
        m, h = mean_ci(x)
        hits += abs(m - 3) <= h
    assert 0.93 <= hits / 2000 <= 0.97


def test_hidden_reference_removal_uses_the_same_workers_reference():
    r = pd.DataFrame([
        dict(assignment_id="a1", worker_id="w1", ref_id="r", stimulus_id="r", codec="reference",
             score=4),
        dict(assignment_id="a1", worker_id="w1", ref_id="r", stimulus_id="d", codec="jpeg",
             score=3),
        dict(assignment_id="a2", worker_id="w2", ref_id="r", stimulus_id="r", codec="reference",
             score=5),
        dict(assignment_id="a2", worker_id="w2", ref_id="r", stimulus_id="d", codec="jpeg",
             score=5),
        dict(assignment_id="a3", worker_id="w3", ref_id="r", stimulus_id="d", codec="jpeg",
             score=2),                        # no reference rated in its assignment
    ])
    dv = differential_scores(r)
    assert dv.tolist()[1] == 3 - 4 + 5 and dv.tolist()[3] == 5 - 5 + 5
    assert math.isnan(dv[0]) and math.isnan(dv[2]) and math.isnan(dv[4])


def test_sureal_recovers_biases_and_scores_of_noise_free_ratings():
    rng = np.random.default_rng(1)
    psi = rng.uniform(1.5, 4.5, 30)
    bias = rng.normal(0, 0.5, 12)
    bias -= bias.mean()
    rows = [dict(worker_id=f"w{i:02d}", stimulus_id=f"s{j:02d}", score=psi[j] + bias[i])
            for i in range(12) for j in range(30) if (i + j) % 3]          # incomplete design
    fit = fit_sureal(pd.DataFrame(rows))
    assert np.allclose(fit.bias.to_numpy(), bias, atol=1e-5)
    assert np.allclose(fit.psi.to_numpy(), psi, atol=1e-5)


def test_sureal_down_weights_an_inconsistent_worker():
    rng = np.random.default_rng(2)
    psi = rng.uniform(1, 5, 40)
    noise = np.array([0.2] * 9 + [2.0])
    rows = [dict(worker_id=f"w{i}", stimulus_id=f"s{j:02d}",
                 score=psi[j] + noise[i] * rng.standard_normal())
            for i in range(10) for j in range(40)]
    fit = fit_sureal(pd.DataFrame(rows))
    assert fit.noise["w9"] > 5 * fit.noise.drop("w9").max()
    err_ml = np.abs(fit.psi.to_numpy() - psi).mean()
    err_mean = np.abs(pd.DataFrame(rows).groupby("stimulus_id").score.mean().to_numpy() - psi)
    assert err_ml < err_mean.mean()          # better than the plain mean


def test_stimulus_and_codec_tables():
    rows = []
    for w in ("w1", "w2", "w3"):
        for ref in ("r1", "r2"):
            a = f"{w}-{ref}"
            rows.append(dict(assignment_id=a, worker_id=w, ref_id=ref, ref_path=f"{ref}.png",
                             stimulus_id=ref, path=f"{ref}.png", codec="reference", bpp="",
                             target_bpp="", score=5))
            for codec, s in (("jpeg", 2), ("webp", 4)):
                rows.append(dict(assignment_id=a, worker_id=w, ref_id=ref,
                                 ref_path=f"{ref}.png", stimulus_id=f"{ref}-{codec}",
                                 path=f"{ref}-{codec}.png", codec=codec, bpp="0.3",
                                 target_bpp="0.3", score=s + (w == "w3") * (ref == "r2")))
    mos, fit = stimulus_scores(pd.DataFrame(rows), "acr")
    m = mos.set_index("stimulus_id")
    assert m.loc["r1-jpeg", "mos"] == 2 and m.loc["r1-jpeg", "dmos"] == 2
    assert m.loc["r2-webp", "mos"] == pytest.approx(13 / 3) and m.loc["r1", "hidden_ref"] == 1
    assert math.isnan(m.loc["r1", "dmos"]) and m.loc["r1-webp", "mos_ci"] == 0
    t = codec_table(mos).set_index("codec")
    assert set(t.index) == {"jpeg", "webp"} and (t.score == "dmos").all()
    assert t.loc["jpeg", "mean"] == pytest.approx((2 + 7 / 3) / 2) and t.loc["jpeg",
                                                                              "n_stimuli"] == 2


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["--db", str(tmp_path / "none.sqlite"), "--trials", str(tmp_path / "t.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mturk.mos: error:") and "\n" not in err
    assert not (tmp_path / "none.sqlite").exists()
    db = tmp_path / "empty.sqlite"
    from mturk.store.study_db import StudyDB

    StudyDB(db)
    (tmp_path / "t.csv").write_text("x\n")
    assert main(["--db", str(db), "--trials", str(tmp_path / "t.csv"),
                 "--max-inconsistency", "0.5"]) == 2
    assert "--max-inconsistency" in capsys.readouterr().err
    assert main(["--db", str(db), "--trials", str(tmp_path / "t.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no ratings" in err and "\n" not in err and not (tmp_path / "mos.csv").exists()
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0


@pytest.fixture
def acr_study(tmp_path):
    from werkzeug.serving import make_server

    from mturk.design.trials import TrialsConfig, build
    from mturk.sim.toy_index import make_toy_index
    from mturk.web.app import AppConfig, create_app

    index = make_toy_index(tmp_path / "dist", n_refs=4, size=32, qualities=(5, 15, 30, 60, 95))
    trials = build(index, tmp_path / "study", TrialsConfig(batch_size=12, design="acr"))[0]
    app = create_app(AppConfig(trials=str(trials), db=str(tmp_path / "j.sqlite"), local=True,
                               simulated=True))
    db = app.extensions["plic_db"]
    links = tmp_path / "participants.txt"
    links.write_text("".join(f"{db.keys().participant_token(i)}\n" for i in range(1, 31)))
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}", trials, db, links, tmp_path
    srv.shutdown()


def test_mos_end_to_end_on_a_simulated_acr_crowd(acr_study, capsys):
    from mturk.sim.crowd import SimConfig, run_crowd

    url, trials, db, links, tmp = acr_study
    s = run_crowd(SimConfig(url=url, trials=str(trials), participants=str(links), workers=30,
                            batches_per_worker=10, oracle="psnr", seed=5,
                            mix="careful=0.8,random=0.2", rating_bias_sd=0.5))
    assert s["failures"] == []
    out = tmp / "out"
    assert main(["--db", str(db.path), "--trials", str(trials), "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith("SIMULATED ACR:")
    w = pd.read_csv(out / "workers_mos.csv").set_index("worker_id")
    kinds = pd.Series(s["worker_types"])
    spam = kinds.index[kinds != "careful"]
    careful = kinds.index[kinds == "careful"]
    # screening (BT.500, then the inconsistency check) leaves the spammers out, not the careful
    assert (~w.loc[spam, "kept"]).mean() >= 0.8 and (~w.loc[careful, "kept"]).mean() <= 0.1
    assert (w.loc[spam, "noise"].dropna() > w.loc[careful, "noise"].max()).all()
    # the bias model recovers the careful workers' biases (centred over the careful ones)
    kept_careful = [c for c in careful if w.kept[c]]
    true = pd.Series(s["worker_bias"])[kept_careful]
    est = w.loc[kept_careful, "bias"]
    assert np.corrcoef(true, est)[0, 1] > 0.8
    mos = pd.read_csv(out / "mos.csv")
    assert (mos.n > 0).all() and set(mos.hidden_ref) == {0, 1}
    assert (out / "codec_mos.png").stat().st_size > 0
    assert pd.read_csv(out / "codec_mos.csv").groupby("codec")["mean"].first()["jpeg-q95"] > \
        pd.read_csv(out / "codec_mos.csv").groupby("codec")["mean"].first()["jpeg-q5"]

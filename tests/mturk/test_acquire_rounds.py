"""Active 2AFC sampling (mturk.active.acquire, mturk.trials --strategy,
mturk.active.study_rounds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mturk.active import study_rounds as rounds
from mturk.active.acquire import RoundConfig, pick, scores, settled, side_gain
from mturk.design.trials import TrialsConfig, build, main
from mturk.schema import (
    LABELS_COLUMNS,
    LABELS_ID,
    PREDICTIONS_COLUMNS,
    PREDICTIONS_ID,
    TRIALS_COLUMNS,
    TRIALS_ID,
)
from mturk.sim.toy_index import make_toy_index
from plic.tables import read_table, write_table

GOLDEN = Path(__file__).parent / "data" / "trials_random_golden.csv"
# the settings tests/mturk/data/trials_random_golden.csv was written with (by the code before
# rounds)
GOLDEN_CFG = dict(batch_size=8, sentinel_share=0.25, repeats=1, crop=32, seed=3)


@pytest.fixture(scope="module")
def index(tmp_path_factory, sample_images):
    d = tmp_path_factory.mktemp("idx")
    return make_toy_index(d, images=sample_images, n_refs=3, size=48,
                          qualities=(5, 30, 70, 95), target_bpps=(0.5, 1.0))


def _tests(csv):
    t = read_table(csv, TRIALS_COLUMNS, TRIALS_ID)
    return t[(t.kind == "test") & (t.repeat_of == "")]


def test_random_strategy_is_todays_study_byte_for_byte(index, tmp_path):
    out, _ = build(index, tmp_path / "api", TrialsConfig(**GOLDEN_CFG))
    assert out.read_bytes() == GOLDEN.read_bytes()
    argv = ["--index", str(index), "--out", str(tmp_path / "cli"), "--strategy", "random"]
    argv += [f"--{k.replace('_', '-')}={v}" for k, v in GOLDEN_CFG.items()]
    assert main(argv) == 0
    assert (tmp_path / "cli" / "trials.csv").read_bytes() == GOLDEN.read_bytes()


def test_acquisition_picks_the_uncertain_and_the_contradicted_pairs():
    # metric's p_b per pair: 0, 1: confident; 2, 3: near chance; 4: confident but the two
    # judgments so far say the other side; 5: confident and one judgment agrees
    q = np.array([0.02, 0.97, 0.5, 0.55, 0.95, 0.9])
    p_b = np.array([0.5, 0.5, 0.5, 0.5, 0.0, 1.0])
    n = np.array([0, 0, 0, 0, 2, 1])
    cfg = RoundConfig(strategy="active", round_trials=3, confidence=0.95)
    assert pick(["r"] * 6, q, p_b, n, cfg) == [2, 3, 4]
    s = scores(q, p_b, n)
    assert s[4] > s[5] and s[2] > s[0] and s[2] > s[1]
    # the same with the roles of a and b swapped: the score is symmetric
    assert np.allclose(scores(1 - q, 1 - p_b, n), s)


def _gain_by_quadrature(q, p_b, n, m, grid=200_001):
    """``side_gain`` from its definition, by numerical integration over p (no scipy.beta)."""
    p = (np.arange(grid) + 0.5) / grid
    k = round(p_b * n)
    a, b = k + m * q + 0.5, n - k + m * (1 - q) + 0.5

    def p_below(a, b):
        w = np.exp((a - 1) * np.log(p) + (b - 1) * np.log1p(-p))
        return w[p < 0.5].sum() / w.sum()

    def h(x):
        return -(x * np.log2(x) + (1 - x) * np.log2(1 - x))

    return h(p_below(a, b)) - (a / (a + b) * h(p_below(a + 1, b))
                               + b / (a + b) * h(p_below(a, b + 1)))


def test_gain_rule_prefers_open_questions_over_near_ties_and_settled_sides():
    # 0: metric unsure, never asked; 1: metric confident, never asked; 2: metric confident,
    # two judgments against it; 3: metric confident, one judgment for it; 4, 5: a near-tie
    # asked 2 and 6 times
    q = np.array([0.5, 0.97, 0.95, 0.9, 0.5, 0.5])
    p_b = np.array([0.5, 0.5, 0.0, 1.0, 0.5, 0.5])
    n = np.array([0, 0, 2, 1, 2, 6])
    g = side_gain(q, p_b, n, 2.0)
    for i in range(6):
        assert g[i] == pytest.approx(_gain_by_quadrature(q[i], p_b[i], n[i], 2.0), abs=1e-4)
    assert g[0] > g[4] > g[5] and g[0] > g[1] and g[2] > g[3]
    assert np.allclose(side_gain(1 - q, 1 - p_b, n, 2.0), g)      # a/b swapped: same
    cfg = RoundConfig(strategy="active", round_trials=6, rule="gain", max_n=20)
    assert pick(["r"] * 6, q, p_b, n, cfg) == [0, 4, 1, 5, 3]      # 2: settled (2 of 2)
    with pytest.raises(ValueError, match="--rule"):
        RoundConfig(strategy="active", rule="bald").check()


def test_explore_share_is_drawn_at_random_among_open_pairs():
    q = np.linspace(0.05, 0.5, 20)                   # pair 19 is the most uncertain, then 18...
    p_b, n = np.full(20, 0.5), np.zeros(20)
    p_b[0], n[0] = 1.0, 3                            # pair 0: settled (3 of 3)
    cfg = RoundConfig(strategy="active", round_trials=6, explore=0.5)
    got = pick(["r"] * 20, q, p_b, n, cfg, seed=1)
    assert len(got) == len(set(got)) == 6 and 0 not in got
    by_score = pick(["r"] * 20, q, p_b, n, RoundConfig(strategy="active", round_trials=6))
    assert by_score == [19, 18, 17, 16, 15, 14]
    assert got[3:] == [i for i in by_score if i not in got[:3]][:3]   # the rest by score
    assert pick(["r"] * 20, q, p_b, n, cfg, seed=1) == got            # seeded
    draws = {tuple(pick(["r"] * 20, q, p_b, n, cfg, seed=k)[:3]) for k in range(20)}
    assert len(draws) > 10 and any(min(d) < 10 for d in draws)         # not the score's pairs
    with pytest.raises(ValueError, match="--explore"):
        RoundConfig(strategy="active", explore=1.5).check()


def test_settled_rule():
    p_b = np.array([1.0, 0.0, 1.0, 0.8, 0.5, 0.5, 2 / 3])
    n = np.array([2, 3, 1, 5, 8, 0, 3])
    assert settled(p_b, n, 0.9, 8).tolist() == [True, True, False, True, True, False, False]


def test_cap_per_reference_keeps_coverage():
    refs = ["x"] * 10 + ["y"] * 2
    q = np.array([0.5] * 10 + [0.9] * 2)                  # every x pair beats every y pair
    cfg = RoundConfig(strategy="active", round_trials=6)  # cap: ceil(2 * 6 / 2) = 6
    assert [refs[i] for i in pick(refs, q, np.full(12, 0.5), np.zeros(12), cfg)] == ["x"] * 6
    cfg = RoundConfig(strategy="active", round_trials=6, max_per_ref=4)
    got = [refs[i] for i in pick(refs, q, np.full(12, 0.5), np.zeros(12), cfg)]
    assert got.count("x") == 4 and got.count("y") == 2


def _labels_for(tests, p_b, n, path):
    rows = [dict(trial_id=r.trial_id, ref_id=r.ref_id, ref_path="x.png", a_id=r.a_id,
                 a_path="a.png", b_id=r.b_id, b_path="b.png", p_b=pb, n=k, a_codec="",
                 b_codec="", a_bpp="", b_bpp="")
            for r, pb, k in zip(tests.itertuples(), p_b, n)]
    write_table(path, rows, LABELS_COLUMNS, LABELS_ID)
    return path


def test_active_round_skips_settled_pairs_and_follows_the_metric(index, tmp_path):
    cfg = TrialsConfig(**GOLDEN_CFG)
    pool = _tests(build(index, tmp_path / "pool", cfg)[0])
    k = len(pool) // 2
    # the first half is settled (3 of 3 chose B); of the rest the metric is unsure of the odd
    # ones and sure of the even ones, except pair j: one judgment contradicts it, and its
    # prediction is stored with a and b swapped (so it reads back as 1 - 0.01)
    j = k if k % 2 == 0 else k + 1
    lab = pool.iloc[list(range(k)) + [j]]
    labels = _labels_for(lab, [1.0] * k + [0.0], [3] * k + [1], tmp_path / "labels.csv")
    preds = [dict(trial_id=r.trial_id, a_id=r.a_id, b_id=r.b_id, d_a=1, d_b=1,
                  p_b=0.5 if i % 2 else 0.99) for i, r in enumerate(pool.itertuples())]
    preds[j].update(a_id=preds[j]["b_id"], b_id=preds[j]["a_id"], p_b=0.01)
    write_table(tmp_path / "pred.csv", preds, PREDICTIONS_COLUMNS, PREDICTIONS_ID)
    unsure = [r.trial_id for i, r in enumerate(pool.itertuples()) if i >= k and i % 2]
    rc = RoundConfig(strategy="active", labels=str(labels), predictions=str(tmp_path / "pred.csv"),
                     round_trials=len(unsure) + 1, max_per_ref=100)
    got = _tests(build(index, tmp_path / "r001", cfg, rounds=rc)[0])
    assert set(got.trial_id) == set(unsure) | {pool.trial_id.iloc[j]}
    assert not set(pool.trial_id[:k]) & set(got.trial_id)          # settled: not asked again
    # same ids and a/b as the pool: labels of different rounds merge by id
    pool_ab = pool.set_index("trial_id")
    for r in got.itertuples():
        assert (pool_ab.loc[r.trial_id].a_id, pool_ab.loc[r.trial_id].b_id) == (r.a_id, r.b_id)
    # idempotent; a new labels file makes it a new round
    assert build(index, tmp_path / "r001", cfg, rounds=rc)[1] is False


def test_all_settled_is_a_one_line_error(index, tmp_path, capsys):
    cfg = TrialsConfig(**GOLDEN_CFG)
    pool = _tests(build(index, tmp_path / "pool", cfg)[0])
    labels = _labels_for(pool, [0.0] * len(pool), [8] * len(pool), tmp_path / "labels.csv")
    argv = ["--index", str(index), "--out", str(tmp_path / "r"), "--strategy", "active",
            "--labels", str(labels)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mturk.trials: error:") and "settled" in err and "\n" not in err
    assert main(["--index", str(index), "--out", str(tmp_path / "r"), "--strategy", "best"]) == 2
    assert "--strategy 'best'" in capsys.readouterr().err


def test_rounds_merge_and_resume(tmp_path):
    study = tmp_path / "study"
    assert rounds.next_round(study) == study / "r001"
    common = dict(ref_id="k", ref_path="../img/ref.png", a_path="../img/a.png",
                  b_path="../img/b.png", a_codec="", b_codec="", a_bpp="", b_bpp="")
    (study / "r001").mkdir(parents=True)
    write_table(study / "r001" / "labels.csv",
                [dict(common, trial_id="t-1", a_id="A", b_id="B", p_b=1.0, n=2),
                 dict(common, trial_id="t-2", a_id="C", b_id="D", p_b=0.0, n=1)],
                LABELS_COLUMNS, LABELS_ID)
    (study / "r002").mkdir()
    assert rounds.next_round(study) == study / "r002"        # started, not finished: resume
    write_table(study / "r002" / "labels.csv",               # t-1 shown with a and b swapped
                [dict(common, trial_id="t-1", a_id="B", b_id="A", p_b=0.0, n=1),
                 dict(common, trial_id="t-2", a_id="C", b_id="D", p_b=1.0, n=3)],
                LABELS_COLUMNS, LABELS_ID)
    assert rounds.next_round(study) == study / "r003"
    out, s = rounds.merge(study)
    first = out.read_bytes()
    lab = read_table(out, LABELS_COLUMNS, LABELS_ID).set_index("trial_id")
    assert (float(lab.loc["t-1"].p_b), int(lab.loc["t-1"].n)) == (1.0, 3)
    assert (float(lab.loc["t-2"].p_b), int(lab.loc["t-2"].n)) == (0.75, 4)
    assert lab.loc["t-1"].a_path == "img/a.png"              # relative to the merged file
    assert s["judgments"] == 7 and s["settled"] == 1          # t-1: 3 of 3
    assert rounds.merge(study)[0].read_bytes() == first


def test_help_and_errors(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        rounds.main(["--help"])
    assert e.value.code == 0 and "rounds" in capsys.readouterr().out
    assert rounds.main(["--study", str(tmp_path / "none")]) == 2
    assert "no round with labels" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--strategy" in capsys.readouterr().out

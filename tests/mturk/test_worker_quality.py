"""Worker quality control beyond sentinels (mturk.analysis.worker_quality): each rule flags the
worker it is for and nobody else; aggregate leaves flagged workers out; collect rejects on evidence
inside an
assignment and soft-blocks flagged workers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mturk.analysis.worker_quality import QualityRule, assess, assignment_verdict

TESTS = [f"T{i:02d}" for i in range(20)]
SENTINELS = [f"S{i}" for i in range(4)]
REPEATS = {f"R{i}": TESTS[i] for i in range(4)}
LEFT = {t: "a" if i % 3 else "b" for i, t in enumerate(TESTS + SENTINELS)}
LEFT.update({r: ("b" if LEFT[o] == "a" else "a") for r, o in REPEATS.items()})
TRUTH = {t: "b" if i % 2 else "a" for i, t in enumerate(TESTS)}


def worker(wid, rng, *, test=None, sentinel="right", repeat="same", rt=4000, elapsed_s=120.0,
           simulated=0):
    """One assignment's judgments. ``test(t)``: the choice on a test (default: the truth, 10 %
    slips)."""
    test = test or (lambda t: TRUTH[t] if rng.random() > 0.1 else ("b" if TRUTH[t] == "a"
                                                                   else "a"))
    rows, first = [], {}
    for t in TESTS:
        first[t] = test(t)
        rows.append((t, "test", "", "", first[t]))
    for s in SENTINELS:
        rows.append((s, "sentinel", "a", "", "a" if sentinel == "right" else "b"))
    for r, o in REPEATS.items():
        same = first[o]
        rows.append((r, "test", "", o, same if repeat == "same" else
                     ("b" if same == "a" else "a")))
    out = []
    for t, kind, expected, repeat_of, choice in rows:
        out.append(dict(worker_id=wid, assignment_id=f"A-{wid}", trial_id=t, kind=kind,
                        expected=expected, repeat_of=repeat_of, choice=choice,
                        shown_left=LEFT[t], rt_ms=rt, simulated=simulated,
                        accepted_at="2026-01-01T00:00:00+00:00",
                        submitted_at=(pd.Timestamp("2026-01-01T00:00:00+00:00")
                                      + pd.Timedelta(seconds=elapsed_s)).isoformat()))
    return out


@pytest.fixture
def crowd():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(6):
        rows += worker(f"C{i}", rng)
    rows += [dict(r, choice=r["shown_left"]) for r in worker("LEFTY", rng)]   # always left
    rows += worker("FAST", rng, rt=300)
    rows += worker("CLOCK", rng, elapsed_s=5)                      # fakes rt, not the clock
    rows += worker("SIMCLOCK", rng, elapsed_s=5, simulated=1)      # simulated: no clock
    rows += worker("CONTRA", rng, test=lambda t: "b" if TRUTH[t] == "a" else "a")
    rows += worker("FLIP", rng, repeat="flip")
    rows += worker("BLIND", rng, sentinel="wrong")
    return pd.DataFrame(rows)


def test_each_rule_flags_its_worker_and_nobody_else(crowd):
    q = assess(crowd, QualityRule()).set_index("worker_id")
    flags = {w: set(f) for w, f in q["flags"].items()}
    for i in range(6):
        assert flags[f"C{i}"] == set(), (f"C{i}", q.loc[f"C{i}"].to_dict())
    assert "side-bias" in flags["LEFTY"] and q.loc["LEFTY", "left_share"] == 1.0
    assert "inconsistent" in flags["LEFTY"]               # swapped sides, same side: flips
    assert flags["FAST"] == {"fast"} and q.loc["FAST", "s_per_trial"] == pytest.approx(0.3)
    assert flags["CLOCK"] == {"fast"} and q.loc["CLOCK", "s_per_trial"] == pytest.approx(5 / 28)
    assert flags["SIMCLOCK"] == set()                     # a simulated study has no clock
    assert flags["CONTRA"] == {"consensus"} and q.loc["CONTRA", "consensus_agreement"] < 0.2
    assert flags["FLIP"] == {"inconsistent"} and q.loc["FLIP", "repeats_inconsistent"] == 4
    assert flags["BLIND"] == {"sentinels"} and q.loc["BLIND", "sentinel_accuracy"] == 0
    # the consensus is leave-one-out among unflagged workers: careful ones agree with it
    assert (q.loc[[f"C{i}" for i in range(6)], "consensus_agreement"] > 0.7).all()
    assert (q.loc[[f"C{i}" for i in range(6)], "consensus_trials"] == 20).all()


def test_thresholds_are_the_documented_knobs(crowd):
    loose = QualityRule(min_s_per_trial=0.1, min_consensus=0.0, max_inconsistency=1.0,
                        max_side_bias_p=0.0, min_accuracy=0.0)
    q = assess(crowd, loose)
    assert all(f == [] for f in q["flags"])
    few = assess(crowd[crowd.worker_id == "C0"].head(10), QualityRule())
    assert list(few["flags"].iloc[0]) == ["few-sentinels"]      # nothing to judge on: no block


def test_assignment_verdict_is_evidence_inside_one_assignment():
    rng = np.random.default_rng(1)
    lefty = pd.DataFrame(worker("L", rng)).assign(choice=lambda d: d.shown_left)
    assert "all 28 comparisons were answered 'left'" == assignment_verdict(lefty)
    quick = pd.DataFrame(worker("Q", rng, elapsed_s=10))
    assert assignment_verdict(quick) == "28 comparisons were answered in 10 seconds"
    assert assignment_verdict(quick.assign(simulated=1)) == ""
    assert assignment_verdict(pd.DataFrame(worker("OK", rng))) == ""


def test_aggregate_and_collect_act_on_the_flags(tmp_path):
    """Through the database: aggregate leaves a side-biased worker out of the labels; collect
    rejects an all-one-side assignment, soft-blocks its worker and lists the flags."""
    from datetime import timedelta

    from mturk.analysis.aggregate import aggregate
    from mturk.market import collect as C
    from mturk.market import publish as P
    from mturk.market.memory import InMemoryMarket
    from mturk.store.study_db import StudyDB
    from tests.mturk.test_collect import page_answers
    from tests.mturk.test_market_backends import Clock
    from tests.mturk.test_publish import trial_rows

    db = StudyDB(tmp_path / "s.sqlite")
    db.load_trials(trial_rows(n_batches=1, per_batch=12))
    m = InMemoryMarket(clock=Clock())
    P.publish(P.PublishConfig(external_url="https://s.example.org/task", assignments=3,
                              min_window="none", quiz=False), m, db, "local", out=lambda s: None)
    hit = db.list_hits()[0]["hit_id"]
    keys = db.keys()

    def submit(worker, side_of):
        aid = m.accept(hit, worker)
        m.clock.t += timedelta(minutes=2)
        form = page_answers(db, "b0", hit_id=hit, aid=aid, wid=worker)
        import json

        body = json.loads(form["answers"])
        ids = keys.page_ids(aid, [t["trial_id"] for t in db.batch_trials("b0")])
        trials = {t["trial_id"]: t for t in db.batch_trials("b0")}
        for a in body["answers"]:
            a["side"] = side_of(trials[ids[a["trial_id"]]], a["side"])
        m.submit(aid, {"answers": json.dumps(body)})
        return aid

    good = submit("W1", lambda t, side: side if t["kind"] == "sentinel" else
                  ("left" if int(t["trial_id"][2:]) % 2 else "right"))
    lefty = submit("W2", lambda t, side: "left")
    rep = C.collect(C.CollectConfig(), m, db, "local", out=lambda s: None)
    assert rep.approved == [good] and rep.rejected == [lefty]
    feedback = next(a.feedback for a in m.list_assignments(hit) if a.assignment_id == lefty)
    assert "all 12 comparisons were answered 'left'" in feedback
    assert "side-bias" in rep.flagged["W2"] and rep.blocked == ["W2"]
    assert "side-bias" in db.get_worker("W2")["qc_flags"].split(",")
    s = aggregate(db.path, tmp_path / "trials.csv", tmp_path / "out", write_scores=False)
    w = pd.read_csv(tmp_path / "out" / "workers.csv").set_index("worker_id")
    assert "W2" not in set(w.index[w.kept])
    assert s["unverified_left_out"] == 0

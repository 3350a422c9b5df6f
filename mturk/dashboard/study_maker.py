"""A SIMULATED 2AFC study written straight into a study database, for the dashboard's tests,
screenshots and benchmark: ``make_study``.

Not a crowd (``mturk.sim.crowd`` answers through the real server over HTTP, far too slowly for
100,000 judgments): answers are drawn here and stored with ``StudyDB``'s own writes
(``accept_assignment``, ``record_submission``, ``verify_assignment``), marked simulated. The
trials are real (``mturk.sim.toy_index`` JPEGs at a few qualities, ``mturk.design.trials``), so
the pages show real images. Worker types: ``careful`` (picks the higher JPEG quality with
probability 0.85, sentinels 0.95), ``random``, ``always_left`` and ``fast`` (careful answers in
0.3 s each). With a ``market`` (``mturk.market.memory.InMemoryMarket``), every HIT and
assignment is made there too, so the dashboard's actions have something to act on.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from plic.tables import read_table

from ..design.trials import TrialsConfig, build
from ..market.base import HitTypeSpec
from ..schema import TRIALS_COLUMNS, TRIALS_ID
from ..sim.toy_index import make_toy_index
from ..store.study_db import StudyDB

MIX = (("careful", 0.8), ("random", 0.1), ("always_left", 0.05), ("fast", 0.05))
START = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)


def _quality(codec: str) -> int:
    m = re.search(r"q(\d+)$", codec or "")
    return int(m.group(1)) if m else 100


def make_study(folder: str | Path, workers: int = 30, assignments_per_worker: int = 3,
               batch_size: int = 10, n_refs: int = 2, size: int = 48,
               qualities=(5, 25, 60, 90), target_bpps=(0.5, 1.0), seed: int = 0,
               market=None, reward: str = "0.50", approve_share: float = 0.0,
               progress=None, images: dict | None = None,
               design: str = "2afc") -> tuple[Path, Path]:
    """Write ``folder/dist`` (toy index), ``folder/study/trials.csv`` and answers of
    ``workers`` simulated workers in ``folder/study/judgments.sqlite``; ``images`` (id -> uint8
    RGB) are the references (default: synthetic patterns). ``design`` "acr" or "dsis" makes a
    rating study instead (careful workers: a score that grows with the JPEG quality, plus a
    per-worker bias and noise; random workers: any score). Returns (database, trials.csv)."""
    folder = Path(folder)
    index = make_toy_index(folder / "dist", images=images, n_refs=n_refs, size=size,
                           qualities=qualities, target_bpps=target_bpps, seed=seed)
    rating = design != "2afc"
    trials_csv, _ = build(index, folder / "study", TrialsConfig(
        batch_size=batch_size, sentinel_share=0.0 if rating else 0.2, repeats=0 if rating else 1,
        crop=0, seed=seed, design=design))
    trials = read_table(trials_csv, TRIALS_COLUMNS, TRIALS_ID).to_dict("records")
    db_path = folder / "study" / "judgments.sqlite"
    db = StudyDB(db_path)
    db.load_trials(trials, trials_csv=str(Path(trials_csv).resolve()))
    by_batch: dict[str, list[dict]] = {}
    for t in trials:
        by_batch.setdefault(t["batch_id"], []).append(t)
    batches = sorted(by_batch)
    per = min(assignments_per_worker, len(batches))
    rng = np.random.default_rng(seed)
    mode = "local"
    hit_of, places = {}, workers          # each worker takes a batch at most once
    hit_type = None
    if market is not None:
        hit_type = market.create_hit_type(HitTypeSpec(
            "Which image is closer to the reference?", "Compare images (SIMULATED study)",
            reward, 3600, 86400))
    for b in batches:
        if market is not None:
            hit = market.create_hit(hit_type, "<simulated/>", places, 7 * 86400,
                                    f"plic-dash-{b}", f"plic-dash-{b}")
            hid = hit.hit_id
        else:
            hid = f"H-{b}"
        db.add_hit(hid, b, mode, hit_type_id=hit_type, reward=reward, max_assignments=places,
                   question="external")
        hit_of[b] = hid
    names, shares = zip(*MIX)
    kinds = rng.choice(len(names), size=workers, p=np.array(shares) / sum(shares))
    kinds[0] = 0                                     # at least one careful worker
    n_asg = 0
    for w in range(workers):
        wid = f"W{w + 1:05d}"
        kind = names[kinds[w]]
        bias = float(rng.normal(0, 0.4))
        t0 = START + timedelta(minutes=float(rng.uniform(0, 600)))
        for b in rng.choice(batches, size=per, replace=False):
            answers = []
            for t in by_batch[b] if rating else ():
                q = _quality(t["a_codec"]) if t["a_codec"] != "reference" else 100
                score = 1 + 4 * (q / 100) ** 0.5 + bias + rng.normal(0, 0.5)
                if kind in ("random", "always_left"):
                    score = rng.integers(1, 6)
                answers.append(dict(trial_id=t["trial_id"], score=int(np.clip(round(score), 1, 5)),
                                    rt_ms=300 if kind == "fast" else int(rng.uniform(2000, 5000))))
            for t in by_batch[b] if not rating else ():
                if t["kind"] == "sentinel":
                    good = t["expected"]
                    p_good = 0.95
                else:
                    good = "a" if _quality(t["a_codec"]) >= _quality(t["b_codec"]) else "b"
                    p_good = 0.85
                other = "b" if good == "a" else "a"
                if kind == "random":
                    choice = "a" if rng.random() < 0.5 else "b"
                elif kind == "always_left":
                    choice = t["left"]
                else:
                    choice = good if rng.random() < p_good else other
                rt = 300 if kind == "fast" else int(rng.uniform(1500, 4500))
                answers.append(dict(trial_id=t["trial_id"], choice=choice, shown_left=t["left"],
                                    rt_ms=rt))
            accepted = t0
            submitted = t0 + timedelta(milliseconds=sum(a["rt_ms"] for a in answers) + 5000)
            t0 = submitted + timedelta(minutes=float(rng.uniform(0.5, 20)))
            hid = hit_of[b]
            if market is not None:
                aid = market.submit_assignment(hid, wid, {"answers": "simulated"})
            else:
                n_asg += 1
                aid = f"A{n_asg:08d}"
            iso = accepted.isoformat(timespec="milliseconds")
            db.accept_assignment(aid, hid, wid, accepted_at=iso)
            done_at = submitted.isoformat(timespec="milliseconds")
            if rating:
                db.record_ratings(aid, hid, wid, design, answers, simulated=True,
                                  accepted_at=iso, submitted_at=done_at)
            else:
                db.record_submission(aid, hid, wid, answers, simulated=True, accepted_at=iso,
                                     submitted_at=done_at)
            db.verify_assignment(aid, hid, wid, by="mturk" if market is not None else "token")
            if approve_share and rng.random() < approve_share:
                db.set_assignment_status(aid, "approved")
        if progress and (w + 1) % 50 == 0:
            progress(w + 1, workers)
    db.close()
    return db_path, Path(trials_csv)

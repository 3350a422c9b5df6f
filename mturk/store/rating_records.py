"""Absolute ratings (ACR, DSIS) in the study database (mixed into ``StudyDB``).

The ``ratings`` table (migration ``0003_ratings``) sits beside ``judgments``: one row per
(assignment, trial), the score on the design's 5-point scale (``mturk.design.rating``). An
assignment holds either judgments or ratings, never both. Submissions follow ``record_submission``'s
rules (all or nothing, every trial of the batch exactly once, a repeat with the same scores is a
no-op,
different scores raise ``AlreadySubmittedError`` and the stored scores stand)::

    db.record_ratings(assignment_id, hit_id, worker_id, design, answers, *, simulated=False,
                      require_accepted=True, submitted_at=None, accepted_at=None)
        -> SubmitResult
        # answers: [{"trial_id", "score": 1..5, "rt_ms"}]
    db.ratings(assignment_id=None) -> list[dict]
    db.ratings_frame() -> pandas.DataFrame    # ratings joined with trials, assignments, workers
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from ..design.rating import RATING_DESIGNS, SCALE_MAX, SCALE_MIN
from . import common
from .common import (
    DBError,
    SubmitResult,
)


def ratings_sha(answers: list[dict]) -> str:
    canon = sorted((a["trial_id"], int(a["score"])) for a in answers)
    return hashlib.sha256(json.dumps(["ratings", canon]).encode()).hexdigest()


def _valid_score(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and SCALE_MIN <= v <= SCALE_MAX


class RatingRecords:
    """Methods of ``StudyDB`` for absolute ratings (see the module docstring)."""

    def record_ratings(self, assignment_id: str, hit_id: str, worker_id: str, design: str,
                       answers: list[Mapping], *, simulated: bool = False,
                       require_accepted: bool = True, submitted_at: str | None = None,
                       accepted_at: str | None = None) -> SubmitResult:
        if design not in RATING_DESIGNS:
            raise DBError(f"design must be one of {RATING_DESIGNS}, not {design!r}")
        answers = [dict(a) for a in answers]
        for a in answers:
            if not _valid_score(a.get("score")):
                raise DBError(f"each rating needs an integer score in "
                                  f"[{SCALE_MIN}, {SCALE_MAX}]")
        sha = ratings_sha(answers)
        now = submitted_at or common.utcnow()
        with self._tx(lock=hit_id) as c:
            hit, old, dup = common.open_submission(c, assignment_id, hit_id, worker_id, sha,
                                                      len(answers), require_accepted)
            if dup is not None:
                return dup
            batch = {r[0] for r in c.execute("SELECT trial_id FROM trials WHERE batch_id=?",
                                             (hit["batch_id"],))}
            ids = [a.get("trial_id") for a in answers]
            if len(set(ids)) != len(ids) or set(ids) != batch:
                raise DBError(f"ratings must cover each of the {len(batch)} trials of batch "
                                  f"{hit['batch_id']} exactly once")
            self._ensure_worker(c, worker_id)
            common.mark_submitted(c, old, assignment_id, hit_id, worker_id, now=now,
                                     accepted_at=accepted_at, simulated=simulated, sha=sha)
            c.executemany("INSERT INTO ratings (assignment_id, trial_id, design, score, rt_ms, "
                          "created_at) VALUES (?,?,?,?,?,?)",
                          [(assignment_id, a["trial_id"], design, int(a["score"]),
                            None if a.get("rt_ms") is None else int(a["rt_ms"]), now)
                           for a in answers])
        return SubmitResult("created", assignment_id, len(answers))

    def ratings(self, assignment_id: str | None = None) -> list[dict]:
        if assignment_id is None:
            return self._rows("SELECT * FROM ratings ORDER BY rating_id")
        return self._rows("SELECT * FROM ratings WHERE assignment_id=? ORDER BY rating_id",
                          (assignment_id,))

    def ratings_frame(self):
        """Ratings joined with their trial, assignment, HIT and worker (a pandas DataFrame)."""
        sql = ("SELECT r.assignment_id, r.trial_id, r.design, r.score, r.rt_ms, a.worker_id, "
               "a.hit_id, a.status AS assignment_status, a.simulated, a.accepted_at, "
               "a.submitted_at, a.verified_at, a.verified_by, t.batch_id, t.ref_id, t.ref_path, "
               "t.a_id AS stimulus_id, t.a_path AS path, t.a_codec AS codec, t.a_bpp AS bpp, "
               "t.target_bpp, w.blocked FROM ratings r JOIN assignments a USING (assignment_id) "
               "JOIN trials t ON t.trial_id=r.trial_id JOIN workers w ON w.worker_id=a.worker_id "
               "ORDER BY r.rating_id")
        return self._frame(sql)

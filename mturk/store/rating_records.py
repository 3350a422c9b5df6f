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
        return self._submit_answers(
            assignment_id, hit_id, worker_id, answers, ratings_sha(answers), noun="ratings",
            insert="INSERT INTO ratings (assignment_id, trial_id, design, score, rt_ms, "
                   "created_at) VALUES (?,?,?,?,?,?)",
            values=lambda a: (design, int(a["score"])), check=None, simulated=simulated,
            require_accepted=require_accepted, submitted_at=submitted_at,
            accepted_at=accepted_at)

    def ratings(self, assignment_id: str | None = None) -> list[dict]:
        return self._select("ratings", "rating_id", assignment_id=assignment_id)

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

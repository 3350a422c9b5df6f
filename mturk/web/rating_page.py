"""The HIT page of the rating designs (ACR, DSIS): ``templates/rate.html`` + ``static/rate.js``.

The same conventions as the 2AFC page (``mturk.web.twoafc_page``): keyed page trial ids and image
URLs per assignment (``mturk.tokens``; an ACR page never gets its reference's URL), 1:1 display
(every image pixel is ``max(1, floor(devicePixelRatio))`` device pixels; answers are off while the
window is too small), zoom ``z`` (3x, nearest-neighbour), preview mode, stored answers on a
reopened assignment, the answers posted to ``/api/submit`` and then to
``{turkSubmitTo}/mturk/externalSubmit`` (HIT mode) in the form field ``answers``. Keys: ``5`` to
``1`` rate (the scale is listed best first), ``Backspace`` back; DSIS: the reference is shown
first, ``Space``/``Enter`` (or the button) goes on to the test image, ``r`` shows the reference
again. The submitted JSON::

    {"assignment_id", "hit_id", "worker_id",
     "answers": [{"trial_id": <page trial id>, "score": 1..5, "rt_ms"}, ...]}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ..design.rating import SCALE_MAX, SCALE_MIN, scale_labels
from ..tokens import Keys
from .page import (
    AnswerError,
    parse_submission,
    render_hit_page,
    window_size,
)

TITLES = {"acr": "How good is the image?", "dsis": "How impaired is the second image?"}
VIEW_REF, VIEW_STIMULUS = 0, 1      # mturk.tokens view numbers: the stimulus is the "left" view


def min_window_rating(width: int, height: int) -> tuple[int, int]:
    """(width, height) in CSS pixels a rating page needs at 100 % zoom to show one view at
    one image pixel per device pixel."""
    return window_size(1, width, height)


def rating_page_trials(design: str, trials: Sequence[Mapping], keys: Keys, scope: str,
                       image_url: Callable[[int, int, Mapping], str],
                       size: Callable[[Mapping], tuple[int, int]]) -> list[dict]:
    """Per trial in ``scope``'s order: page id, the stimulus URL (``img``), the reference's URL
    (``ref``, DSIS only) and the size."""
    out = []
    for pos, t in enumerate(keys.page_order(scope, trials)):
        w, h = size(t)
        row = dict(trial_id=keys.page_trial_id(scope, t["trial_id"]),
                   img=image_url(pos, VIEW_STIMULUS, t), w=w, h=h)
        if design == "dsis":
            row["ref"] = image_url(pos, VIEW_REF, t)
        out.append(row)
    return out


def stored_ratings(rows: Sequence[Mapping], keys: Keys, scope: str) -> list[dict]:
    """The database's ratings of one assignment as the page's answers (a reopened page)."""
    return [dict(trial_id=keys.page_trial_id(scope, r["trial_id"]), score=int(r["score"]),
                 rt_ms=r["rt_ms"]) for r in rows]


def render_rating_page(design: str, trials: Sequence[Mapping], *, mode: str, keys: Keys,
                       scope: str, image_url, size, **page) -> str:
    """Render a rating HIT page; ``page`` as ``mturk.web.twoafc_page.render_page``'s."""
    labels = scale_labels(design)
    scale = [dict(score=s, label=labels[s]) for s in sorted(labels, reverse=True)]
    return render_hit_page("rating", rating_page_trials(design, trials, keys, scope, image_url,
                                                        size),
                           mode=mode, title=TITLES[design], own=dict(design=design, scale=scale),
                           design=design, scale=scale, **page)


def parse_ratings(payload: str | bytes | Mapping, trials_by_id: Mapping[str, Mapping],
                  page_ids: Mapping[str, str], max_answers: int = 1000
                  ) -> tuple[dict, list[dict]]:
    """Validate a rating submission; returns (ids, rows for ``StudyDB.record_ratings``).
    Raises ``AnswerError`` on anything malformed (ids, trial ids not of this page, a score
    that is not an integer in [1, 5], response times out of range, too many answers)."""
    def fields(a, tid):
        score = a.get("score")
        if isinstance(score, bool) or not isinstance(score, int) \
                or not SCALE_MIN <= score <= SCALE_MAX:
            raise AnswerError(f"score must be an integer from {SCALE_MIN} to {SCALE_MAX}")
        return dict(score=score)

    return parse_submission(payload, trials_by_id, page_ids, max_answers, fields)

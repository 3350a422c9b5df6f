"""The 2AFC HIT page: ``templates/2afc.html`` + ``static/2afc.js`` in the frame of
``mturk.web.page``.

Per trial the page gets a page trial id and three image URLs (reference, left, right), all keyed
names (``mturk.tokens``); it answers ``left``/``right``, and the server maps ids and sides back
with the trial's recorded ``left``. The submitted JSON (to the server's ``/api/submit`` and, for a
HIT, in the form field ``answers`` posted to ``{turkSubmitTo}/mturk/externalSubmit``)::

    {"assignment_id", "hit_id", "worker_id",
     "answers": [{"trial_id": <page trial id>, "side": "left"|"right", "rt_ms"}, ...]}

``parse_answers`` turns that into database rows (the server's and ``mturk.market.collect``'s,
for HTMLQuestion HITs whose answers reach only MTurk). ``min_window`` is the window the three
views need side by side at 100 % zoom (stated in the HIT description). The rating designs' twin
is ``mturk.web.rating_page``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ..tokens import VIEWS, Keys
from .page import (
    GAP_PX,
    AnswerError,
    parse_submission,
    render_hit_page,
    window_size,
)


def min_window(width: int, height: int) -> tuple[int, int]:
    """(width, height) in CSS pixels a window needs at 100 % zoom (devicePixelRatio 1) to show
    three ``width`` x ``height`` views side by side at one image pixel per device pixel."""
    return window_size(3, width, height)


def describe_min_window(width: int, height: int) -> str:
    w, h = min_window(width, height)
    return (f"Needs a browser window at least {w} x {h} pixels to show the images at full size "
            "(a computer screen; phones are too small).")


def page_trials(trials: Sequence[Mapping], keys: Keys, scope: str,
                image_url: Callable[[int, int, Mapping], str],
                size: Callable[[Mapping], tuple[int, int]]) -> list[dict]:
    """What the page gets per trial, in ``scope``'s order: page id, the three image URLs
    (``image_url(position, view, trial)``, view 0 reference, 1 left, 2 right) and the size."""
    out = []
    for pos, t in enumerate(keys.page_order(scope, trials)):
        w, h = size(t)
        out.append(dict(trial_id=keys.page_trial_id(scope, t["trial_id"]),
                        **{v: image_url(pos, i, t) for i, v in enumerate(VIEWS)}, w=w, h=h))
    return out


def stored_answers(rows: Sequence[Mapping], keys: Keys, scope: str) -> list[dict]:
    """The database's judgments of one assignment as the page's answers (a reopened page)."""
    return [dict(trial_id=keys.page_trial_id(scope, r["trial_id"]),
                 side="left" if r["choice"] == r["shown_left"] else "right", rt_ms=r["rt_ms"])
            for r in rows]


def render_page(trials: Sequence[Mapping], *, mode: str, keys: Keys, scope: str, image_url,
                size, title: str = "Which image is closer?", **page) -> str:
    """Render the HIT page. ``mode``: ``local``, ``hit``, ``preview`` or ``htmlquestion``;
    ``page``: the ids, ``submit_to``, ``record_url``, ``static_url``, ``inline_assets`` and
    ``stored`` of ``mturk.web.page.render_hit_page``.

    ``stored`` (``{"answers": [...], "saved_at": ...}``): answers the server already holds for
    this assignment; the page shows them as final and offers only to submit them to MTurk."""
    return render_hit_page("2afc", page_trials(trials, keys, scope, image_url, size), mode=mode,
                           title=title, layout=dict(gap=GAP_PX), **page)


def parse_answers(payload: str | bytes | Mapping, trials_by_id: Mapping[str, Mapping],
                  page_ids: Mapping[str, str], max_answers: int = 1000) -> tuple[dict, list[dict]]:
    """Validate a submission; returns (ids, rows for ``StudyDB.record_submission``).

    ``page_ids`` maps the page's trial ids to trial ids (``Keys.page_ids`` for the assignment's
    scope); ``trials_by_id`` maps those to trial rows (for the shown-left side). Raises
    ``AnswerError`` on anything malformed: ids that are not ``[A-Za-z0-9_-]{1,64}``, trial ids
    not of this page, sides other than left/right, response times out of range, too many answers.
    """
    def fields(a, tid):
        side = a.get("side")
        if side not in ("left", "right"):
            raise AnswerError("side must be 'left' or 'right'")
        left = trials_by_id[tid]["left"]
        return dict(choice=left if side == "left" else ("b" if left == "a" else "a"),
                    shown_left=left)

    return parse_submission(payload, trials_by_id, page_ids, max_answers, fields)

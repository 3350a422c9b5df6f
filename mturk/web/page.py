"""The HIT page: one jinja2 template rendered for the server, MTurk preview, and HTMLQuestion.

Nothing on the page tells the trials' roles apart. Per trial it gets a page trial id and three
image URLs (reference, left, right), all keyed names (``mturk.tokens``): ids and URLs differ per
assignment (per batch for an HTMLQuestion), and the order of the trials too; it answers
``left``/``right``, and the server maps ids and sides back with the trial's recorded ``left``.

The answer a page submits (to the server's ``/api/submit`` and, for a HIT, in the form field
``answers`` posted to ``{turkSubmitTo}/mturk/externalSubmit``) is JSON::

    {"assignment_id", "hit_id", "worker_id",
     "answers": [{"trial_id": <page trial id>, "side": "left"|"right", "rt_ms"}, ...]}

``parse_answers`` turns that into database rows (the server's and ``collect.py``'s, for
HTMLQuestion HITs whose answers reach only MTurk). ``html_image_files`` lists what to upload for
an HTMLQuestion's public base URL.

Full-size viewing: the page draws every image pixel as ``max(1, floor(devicePixelRatio))``
device pixels, never fewer, and zoom enlarges by whole factors with nearest-neighbour
(``image-rendering: pixelated``). When the window cannot show the three views side by side at that
size, the page says so and takes no answers. ``min_window`` is the size it needs at 100 % zoom
(stated in the HIT description); its constants are the ones in ``static/hit.css`` and
``static/page.css``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import jinja2
from PIL import Image

from .tokens import VIEWS, Keys

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
ANSWER_FIELD = "answers"
PREVIEW_ASSIGNMENT = "ASSIGNMENT_ID_NOT_AVAILABLE"
MTURK_SUBMIT_HOSTS = ("https://www.mturk.com", "https://workersandbox.mturk.com")
MTURK_FRAME_ANCESTORS = ("https://worker.mturk.com", "https://workersandbox.mturk.com",
                         "https://www.mturk.com")
ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_RT_MS = 3_600_000
PAGE_MODES = ("local", "hit", "preview", "htmlquestion")

# The page's geometry in CSS pixels (static/hit.css and page.css hold the same numbers).
FRAME_BORDER_PX = 3      # .frame border
GAP_PX = 16              # #trial gap between the three views
BODY_PAD_PX = 16         # body padding left and right
CAPTION_PX = 32          # a view's caption under its frame
SCROLLBAR_PX = 20        # room for a vertical scrollbar

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                          autoescape=jinja2.select_autoescape(["html"]),
                          undefined=jinja2.StrictUndefined)


class AnswerError(ValueError):
    """A submission that is malformed; nothing was recorded."""


def min_window(width: int, height: int) -> tuple[int, int]:
    """(width, height) in CSS pixels a window needs at 100 % zoom (devicePixelRatio 1) to show
    three ``width`` x ``height`` views side by side at one image pixel per device pixel."""
    view_w = width + 2 * FRAME_BORDER_PX
    return (3 * view_w + 2 * GAP_PX + 2 * BODY_PAD_PX + SCROLLBAR_PX,
            height + 2 * FRAME_BORDER_PX + CAPTION_PX)


def describe_min_window(width: int, height: int) -> str:
    w, h = min_window(width, height)
    return (f"Needs a browser window at least {w} x {h} pixels to show the images at full size "
            "(a computer screen; phones are too small).")


@lru_cache(maxsize=65536)
def image_size(path: str) -> tuple[int, int]:
    """(width, height) of an image file, from its header."""
    with Image.open(path) as im:
        return im.size


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


def view_source(t: Mapping, view: str) -> tuple[str, str]:
    """(image id, path) that a trial shows in ``view`` (ref, left or right)."""
    if view == "ref":
        return t["ref_id"], t["ref_path"]
    side = t["left"] if view == "left" else ("b" if t["left"] == "a" else "a")
    return t[f"{side}_id"], t[f"{side}_path"]


def stored_answers(rows: Sequence[Mapping], keys: Keys, scope: str) -> list[dict]:
    """The database's judgments of one assignment as the page's answers (a reopened page)."""
    return [dict(trial_id=keys.page_trial_id(scope, r["trial_id"]),
                 side="left" if r["choice"] == r["shown_left"] else "right", rt_ms=r["rt_ms"])
            for r in rows]


def render_page(trials: Sequence[Mapping], *, mode: str, keys: Keys, scope: str, image_url,
                size, assignment_id: str = "", hit_id: str = "", worker_id: str = "",
                submit_to: str = "", record_url: str = "", stored: Mapping | None = None,
                static_url=None, title: str = "Which image is closer?",
                inline_assets: bool = False) -> str:
    """Render the HIT page. ``mode``: ``local``, ``hit``, ``preview`` or ``htmlquestion``.

    ``stored`` (``{"answers": [...], "saved_at": ...}``): answers the server already holds for
    this assignment; the page shows them as final and offers only to submit them to MTurk."""
    if mode not in PAGE_MODES:
        raise ValueError(f"unknown page mode {mode!r}")
    task = dict(mode=mode, assignment_id=assignment_id, hit_id=hit_id, worker_id=worker_id,
                record_url=record_url, stored=dict(stored) if stored else None,
                trials=page_trials(trials, keys, scope, image_url, size),
                preview_id=PREVIEW_ASSIGNMENT, submit_hosts=list(MTURK_SUBMIT_HOSTS),
                layout=dict(border=FRAME_BORDER_PX, gap=GAP_PX, pad=BODY_PAD_PX,
                            caption=CAPTION_PX, scrollbar=SCROLLBAR_PX))
    return render_template("hit", task=task, mode=mode, title=title,
                           assignment_id=assignment_id, submit_to=submit_to,
                           n_trials=len(trials), inline_assets=inline_assets,
                           static_url=static_url)


def render_template(name: str, *, submit_to: str, inline_assets: bool, static_url, **ctx) -> str:
    """Render ``templates/NAME.html`` (its blocks of ``_page.html``) with ``static/page.css`` and
    ``page.js``, then its own ``NAME.css`` and ``NAME.js`` (inline, or linked through
    ``static_url``), and the MTurk submit action; ``ctx`` is the page's own."""
    assets = {}
    if inline_assets:
        assets = dict(css=(STATIC / "page.css").read_text() + (STATIC / f"{name}.css").read_text(),
                      js=(STATIC / "page.js").read_text() + (STATIC / f"{name}.js").read_text())
    return _env.get_template(f"{name}.html").render(
        submit_action=(submit_to.rstrip("/") + "/mturk/externalSubmit") if submit_to else "",
        answer_field=ANSWER_FIELD, inline=inline_assets, assets=assets,
        static_url=static_url or (lambda name: f"/static/{name}"), asset=name, **ctx)


def parse_answers(payload: str | bytes | Mapping, trials_by_id: Mapping[str, Mapping],
                  page_ids: Mapping[str, str], max_answers: int = 1000) -> tuple[dict, list[dict]]:
    """Validate a submission; returns (ids, rows for ``StudyDB.record_submission``).

    ``page_ids`` maps the page's trial ids to trial ids (``Keys.page_ids`` for the assignment's
    scope); ``trials_by_id`` maps those to trial rows (for the shown-left side). Raises
    ``AnswerError`` on anything malformed: ids that are not ``[A-Za-z0-9_-]{1,64}``, trial ids
    not of this page, sides other than left/right, response times out of range, too many answers.
    """
    ids, answers = parse_envelope(payload, max_answers)
    rows = []
    for a in answers:
        tid = answer_trial(a, trials_by_id, page_ids)
        side = a.get("side")
        if side not in ("left", "right"):
            raise AnswerError("side must be 'left' or 'right'")
        rt = answer_rt(a)
        left = trials_by_id[tid]["left"]
        choice = left if side == "left" else ("b" if left == "a" else "a")
        rows.append(dict(trial_id=tid, choice=choice, shown_left=left, rt_ms=rt))
    return ids, rows


# The submission's envelope, the same for every design (2AFC here, ratings in mturk.rating_page):
# its ids, its list of answers, each answer's page trial id and response time.

def parse_envelope(payload: str | bytes | Mapping, max_answers: int) -> tuple[dict, list]:
    """(ids, answers) of a submission: JSON object, ids matching ``ID_RE``, 1 to
    ``max_answers`` answers; raises ``AnswerError`` otherwise."""
    if isinstance(payload, (str, bytes)):
        try:
            payload = json.loads(payload)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise AnswerError("answers are not valid JSON") from e
    if not isinstance(payload, Mapping):
        raise AnswerError("a submission is a JSON object")
    ids = {}
    for key in ("assignment_id", "hit_id", "worker_id"):
        v = payload.get(key)
        if not isinstance(v, str) or not ID_RE.match(v):
            raise AnswerError(f"{key} must match {ID_RE.pattern}")
        ids[key] = v
    answers = payload.get("answers")
    if not isinstance(answers, list) or not 0 < len(answers) <= max_answers:
        raise AnswerError(f"answers must be a list of 1 to {max_answers} items")
    return ids, answers


def answer_trial(a, trials_by_id: Mapping[str, Mapping], page_ids: Mapping[str, str]) -> str:
    """The trial id an answer (an object) names through its page trial id."""
    if not isinstance(a, Mapping):
        raise AnswerError("each answer is an object")
    pid = a.get("trial_id")
    tid = page_ids.get(pid) if isinstance(pid, str) else None
    if tid is None or tid not in trials_by_id:
        raise AnswerError("a trial id that is not on this page")
    return tid


def answer_rt(a: Mapping) -> int | None:
    """An answer's response time in whole milliseconds (None when not given)."""
    rt = a.get("rt_ms")
    if rt is not None and (isinstance(rt, bool) or not isinstance(rt, (int, float))
                           or not 0 <= rt <= MAX_RT_MS):
        raise AnswerError("rt_ms must be a number of milliseconds")
    return None if rt is None else int(rt)

"""The HIT pages' common frame, for every design: one jinja2 template per design
(``templates/2afc.html``: ``mturk.web.twoafc_page``; ``templates/rating.html``:
``mturk.web.rating_page``) in the blocks of ``templates/_page.html``, rendered for the server,
MTurk preview, and HTMLQuestion.

Nothing on a page tells the trials' roles apart: per trial it gets a page trial id and its image
URLs, all keyed names (``mturk.tokens``): ids and URLs differ per assignment (per batch for an
HTMLQuestion), and the order of the trials too. What every design shares is here: the page
modes, MTurk's hosts, the page's geometry, the rendering of a template with its assets
(``render_template``), the submission's envelope (``parse_submission``: ids, a list of
answers, each answer's page trial id and response time; the design checks the rest), which
image a trial shows in each view (``view_source``) and image sizes.

Full-size viewing: the page draws every image pixel as ``max(1, floor(devicePixelRatio))``
device pixels, never fewer, and zoom enlarges by whole factors with nearest-neighbour
(``image-rendering: pixelated``). When the window cannot show the views at that size, the page
says so and takes no answers. The geometry constants below are the ones in ``static/page.css``,
``static/2afc.css`` and ``static/rating.css``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import jinja2

from plic import image_io

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


@lru_cache(maxsize=65536)
def image_size(path: str) -> tuple[int, int]:
    """(width, height) of an image file, from its header (``plic.image_io.image_size``, cached:
    a served study's files do not change)."""
    return image_io.image_size(path)


def view_source(t: Mapping, view: str) -> tuple[str, str]:
    """(image id, path) that a trial shows in ``view`` (ref, left or right)."""
    if view == "ref":
        return t["ref_id"], t["ref_path"]
    side = t["left"] if view == "left" else ("b" if t["left"] == "a" else "a")
    return t[f"{side}_id"], t[f"{side}_path"]


def window_size(views: int, width: int, height: int) -> tuple[int, int]:
    """(width, height) in CSS pixels a window needs at 100 % zoom (devicePixelRatio 1) to show
    ``views`` ``width`` x ``height`` views side by side at one image pixel per device pixel:
    their frames, the gaps between them, the body's padding and room for a scrollbar across,
    a frame and its caption down (``static/page.js`` checks the same in the browser)."""
    return (views * (width + 2 * FRAME_BORDER_PX) + (views - 1) * GAP_PX + 2 * BODY_PAD_PX
            + SCROLLBAR_PX, height + 2 * FRAME_BORDER_PX + CAPTION_PX)


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


def render_hit_page(name: str, trials: list[dict], *, mode: str, title: str,
                    assignment_id: str = "", hit_id: str = "", worker_id: str = "",
                    submit_to: str = "", record_url: str = "", stored: Mapping | None = None,
                    static_url=None, inline_assets: bool = False, layout: Mapping = (),
                    own: Mapping = (), **ctx) -> str:
    """A HIT page of any design (``render_template``): ``trials`` as the page gets them, and
    the task data every page's script reads (``static/page.js``: ids, ``mode`` (``local``,
    ``hit``, ``preview`` or ``htmlquestion``), where answers go, ``stored`` answers, the
    frame's sizes); ``layout`` and ``own`` add the design's own to the task data, ``ctx`` to
    the template."""
    if mode not in PAGE_MODES:
        raise ValueError(f"unknown page mode {mode!r}")
    task = dict(mode=mode, assignment_id=assignment_id, hit_id=hit_id, worker_id=worker_id,
                record_url=record_url, stored=dict(stored) if stored else None, trials=trials,
                preview_id=PREVIEW_ASSIGNMENT, submit_hosts=list(MTURK_SUBMIT_HOSTS),
                layout=dict(border=FRAME_BORDER_PX, pad=BODY_PAD_PX, caption=CAPTION_PX,
                            scrollbar=SCROLLBAR_PX, **dict(layout)), **dict(own))
    return render_template(name, task=task, mode=mode, title=title,
                           assignment_id=assignment_id, submit_to=submit_to,
                           n_trials=len(trials), inline_assets=inline_assets,
                           static_url=static_url, **ctx)


# The submission's envelope, the same for every design (2AFC here, ratings in
# mturk.web.rating_page): its ids, its list of answers, each answer's page trial id and response
# time.

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


def parse_submission(payload: str | bytes | Mapping, trials_by_id: Mapping[str, Mapping],
                     page_ids: Mapping[str, str], max_answers: int, fields
                     ) -> tuple[dict, list[dict]]:
    """(ids, rows) of a submission: its envelope checked (``parse_envelope``), each answer's
    page trial id mapped through ``page_ids`` to a trial of ``trials_by_id``, then
    ``fields(answer, trial_id)`` (the design's own, checked: a dict) and its response time:
    rows ``{trial_id, **fields, rt_ms}``. ``AnswerError`` on anything malformed."""
    ids, answers = parse_envelope(payload, max_answers)
    rows = []
    for a in answers:
        tid = answer_trial(a, trials_by_id, page_ids)
        own = fields(a, tid)
        rows.append(dict(trial_id=tid, **own, rt_ms=answer_rt(a)))
    return ids, rows

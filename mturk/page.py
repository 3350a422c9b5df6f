"""The HIT page: one jinja2 template rendered for the server, MTurk preview, and HTMLQuestion.

Workers never see which side is ``a`` or ``b``, the codec, or whether a trial is a sentinel: the
page gets, per trial, its id and three opaque image URLs (reference, left, right), and answers
``left``/``right``. The server maps a side back to ``a``/``b`` with the trial's recorded ``left``.

The answer a page submits (to the server's ``/api/submit`` and, for a HIT, in the form field
``answers`` posted to ``{turkSubmitTo}/mturk/externalSubmit``) is JSON::

    {"assignment_id", "hit_id", "worker_id", "answers": [{"trial_id", "side", "rt_ms"}, ...]}

``parse_answers`` turns that into database rows (what ``collect.py`` needs for HTMLQuestion HITs,
whose answers reach only MTurk); ``image_files`` lists the files to upload for a public base URL.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import jinja2

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

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                          autoescape=jinja2.select_autoescape(["html"]),
                          undefined=jinja2.StrictUndefined)


class AnswerError(ValueError):
    """A submission that is malformed; nothing was recorded."""


def image_token(image_id: str) -> str:
    """Opaque, stable name of an image (the page must not reveal codec names)."""
    return hashlib.sha1(f"plic-img|{image_id}".encode()).hexdigest()[:16]


def image_files(trials: Sequence[Mapping], resolve) -> dict[str, Path]:
    """``{token: file}`` for every image of ``trials``; ``resolve(path_in_table) -> Path``."""
    out = {}
    for t in trials:
        for side in ("ref", "a", "b"):
            out[image_token(t[f"{side}_id"])] = Path(resolve(t[f"{side}_path"]))
    return out


def page_trials(trials: Sequence[Mapping], image_url) -> list[dict]:
    """What the page gets per trial: id and the three image URLs, sides already placed."""
    out = []
    for t in trials:
        right = "b" if t["left"] == "a" else "a"
        out.append(dict(trial_id=t["trial_id"],
                        ref=image_url(image_token(t["ref_id"])),
                        left=image_url(image_token(t[f"{t['left']}_id"])),
                        right=image_url(image_token(t[f"{right}_id"]))))
    return out


def render_page(trials: Sequence[Mapping], *, mode: str, image_url, assignment_id: str = "",
                hit_id: str = "", worker_id: str = "", submit_to: str = "",
                record_url: str = "", static_url=None, title: str = "Which image is closer?",
                inline_assets: bool = False) -> str:
    """Render the HIT page. ``mode``: ``local``, ``hit``, ``preview`` or ``htmlquestion``."""
    if mode not in ("local", "hit", "preview", "htmlquestion"):
        raise ValueError(f"unknown page mode {mode!r}")
    task = dict(mode=mode, assignment_id=assignment_id, hit_id=hit_id, worker_id=worker_id,
                record_url=record_url, trials=page_trials(trials, image_url))
    assets = {}
    if inline_assets:
        assets = dict(css=(STATIC / "hit.css").read_text(), js=(STATIC / "hit.js").read_text())
    return _env.get_template("hit.html").render(
        task=task, mode=mode, title=title, assignment_id=assignment_id,
        submit_action=(submit_to.rstrip("/") + "/mturk/externalSubmit") if submit_to else "",
        answer_field=ANSWER_FIELD, n_trials=len(trials), inline=inline_assets, assets=assets,
        static_url=static_url or (lambda name: f"/static/{name}"))


def render_html_question(trials: Sequence[Mapping], image_base_url: str,
                         sandbox: bool = True) -> str:
    """The page as HTMLQuestion content: assets inlined, images under ``image_base_url``.

    MTurk fills in the assignment id; the page posts straight to MTurk's externalSubmit (answers
    reach the database through ``collect``). Upload ``image_files(...)`` to ``image_base_url``
    as ``<token>.png``.
    """
    base = image_base_url.rstrip("/")
    if not base.startswith("https://"):
        raise ValueError("image_base_url must be https:// (MTurk pages are served over HTTPS)")
    host = MTURK_SUBMIT_HOSTS[1] if sandbox else MTURK_SUBMIT_HOSTS[0]
    return render_page(trials, mode="htmlquestion", image_url=lambda t: f"{base}/{t}.png",
                       submit_to=host, inline_assets=True)


def parse_answers(payload: str | bytes | Mapping, trials_by_id: Mapping[str, Mapping],
                  max_answers: int = 1000) -> tuple[dict, list[dict]]:
    """Validate a submission; returns (ids, rows for ``StudyDB.record_submission``).

    ``trials_by_id`` maps trial ids to trial rows (for the shown-left side). Raises
    ``AnswerError`` on anything malformed: ids that are not ``[A-Za-z0-9_-]{1,64}``, unknown
    trials, sides other than left/right, response times out of range, too many answers.
    """
    if isinstance(payload, (str, bytes)):
        try:
            payload = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as e:
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
    rows = []
    for a in answers:
        if not isinstance(a, Mapping):
            raise AnswerError("each answer is an object")
        tid, side, rt = a.get("trial_id"), a.get("side"), a.get("rt_ms")
        if not isinstance(tid, str) or tid not in trials_by_id:
            raise AnswerError("unknown trial id")
        if side not in ("left", "right"):
            raise AnswerError("side must be 'left' or 'right'")
        if rt is not None and (isinstance(rt, bool) or not isinstance(rt, (int, float))
                               or not 0 <= rt <= MAX_RT_MS):
            raise AnswerError("rt_ms must be a number of milliseconds")
        left = trials_by_id[tid]["left"]
        choice = left if side == "left" else ("b" if left == "a" else "a")
        rows.append(dict(trial_id=tid, choice=choice, shown_left=left,
                         rt_ms=None if rt is None else int(rt)))
    return ids, rows

"""The HIT's routes (blueprint ``task``): the page, the same task as JSON, and the submission.

- ``GET /task?assignmentId&hitId&workerId&turkSubmitTo`` (``/hit`` is an alias): the HIT page.
  ``assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE`` is MTurk's preview; otherwise, once every check has
  passed, the assignment is recorded as accepted. ``HEAD`` checks everything and records nothing.
- ``GET /api/task?...``: the same task as JSON (the simulator uses it); records nothing.
- ``POST /api/submit``: JSON answers of either design (``Content-Type: application/json`` only,
  else 415), into the database.
"""

from __future__ import annotations

import json

from flask import Blueprint, abort, jsonify, request, url_for

from ..store.study_db import AlreadySubmittedError, ConflictError, DBError, UnknownIdError
from .errors import BlockedError, fail, status_of
from .loaded_study import loaded
from .page import ID_RE, MTURK_SUBMIT_HOSTS, PREVIEW_ASSIGNMENT, AnswerError
from .rating_page import parse_ratings, rating_page_trials, render_rating_page
from .twoafc_page import page_trials, parse_answers, render_page

bp = Blueprint("task", __name__)

HTML = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}


def _lookup(record: bool, probe: bool = False):
    """(hit, assignment id, worker id, preview, assignment) from the query; writes only when
    ``record`` and every check has passed. ``probe`` (HEAD): every check, no write."""
    s, q = loaded(), request.args
    db = s.db
    aid, hid, wid = q.get("assignmentId", ""), q.get("hitId", ""), q.get("workerId", "")
    if not ID_RE.match(hid) or not ID_RE.match(aid):
        abort(400, "hitId and assignmentId must be ids")
    hit = db.get_hit(hid)
    if hit is None or hit["batch_id"] not in s.by_batch:
        abort(404, "unknown HIT")
    if aid == PREVIEW_ASSIGNMENT:
        return hit, aid, "", True, None
    if not ID_RE.match(wid):
        abort(400, "workerId must be an id")
    if hit["question"] != "local" and hit["mode"] != "local" and (record or probe):
        if request.args.get("turkSubmitTo", "").rstrip("/") not in MTURK_SUBMIT_HOSTS:
            abort(400, "turkSubmitTo must be one of MTurk's submit hosts")
    if db.is_blocked(wid):
        abort(403, "this worker may not take part in this study")
    asg = db.get_assignment(aid)
    if asg is not None and (asg["hit_id"], asg["worker_id"]) != (hid, wid):
        abort(409, "assignment belongs to another HIT or worker")
    if asg is None:
        if hit["question"] == "local" or not (record or probe):
            abort(404, "unknown assignment")
        if probe:
            return hit, aid, wid, False, None
        try:
            asg = db.accept_assignment(aid, hid, wid)
        except DBError as e:
            abort(status_of(e), str(e))
    return hit, aid, wid, False, asg


@bp.route("/task", methods=["GET", "HEAD"])
def task_page():
    head = request.method == "HEAD"
    hit, aid, wid, preview, asg = _lookup(record=not head, probe=head)
    if head:
        return "", 200, HTML
    s = loaded()
    local = hit["mode"] == "local"
    batch = hit["batch_id"]
    scope = f"preview-{hit['hit_id']}" if preview else aid
    mode = "preview" if preview else ("local" if local else "hit")
    render = (lambda *a, **k: render_rating_page(s.design, *a, **k)) if s.rating else render_page
    html = render(s.by_batch[batch], mode=mode, keys=s.keys, scope=scope,
                  image_url=s.img_url(batch, scope), size=s.size,
                  assignment_id=aid if not preview else "", hit_id=hit["hit_id"],
                  worker_id=wid,
                  submit_to="" if local else request.args.get("turkSubmitTo", ""),
                  record_url="" if preview else url_for("task.submit"),
                  stored=s.stored_of(asg, batch, scope))
    return html, 200, HTML


bp.add_url_rule("/hit", "hit_alias", task_page, methods=["GET", "HEAD"])


@bp.get("/api/task")
def task_json():
    s = loaded()
    hit, aid, wid, preview, asg = _lookup(record=False)
    batch = hit["batch_id"]
    scope = f"preview-{hit['hit_id']}" if preview else aid
    made = (lambda *a: rating_page_trials(s.design, *a)) if s.rating else page_trials
    return jsonify(hit_id=hit["hit_id"], assignment_id=aid, worker_id=wid, preview=preview,
                   design=s.design,
                   trials=made(s.by_batch[batch], s.keys, scope, s.img_url(batch, scope), s.size),
                   stored=s.stored_of(asg, batch, scope))


@bp.post("/api/submit")
def submit():
    s = loaded()
    db = s.db
    if request.mimetype != "application/json":
        # a cross-site form (text/plain, urlencoded, multipart) needs no CORS preflight: taking
        # its body as JSON would let any web page post answers in a worker's name
        return fail(415, "a submission is sent as Content-Type: application/json")
    try:
        payload = json.loads(request.get_data())
    except (ValueError, UnicodeDecodeError, RecursionError):
        return fail(400, "expected a JSON body")
    if not isinstance(payload, dict):
        return fail(400, "a submission is a JSON object")
    aid, hid, wid = (payload.get(k) for k in ("assignment_id", "hit_id", "worker_id"))
    try:
        if not all(isinstance(v, str) and ID_RE.match(v) for v in (aid, hid, wid)):
            raise AnswerError("assignment_id, hit_id and worker_id must be ids")
        hit = db.get_hit(hid)
        if hit is None or hit["batch_id"] not in s.by_batch:
            raise UnknownIdError(f"unknown HIT {hid!r}")
        if db.is_blocked(wid):
            raise BlockedError("this worker may not take part in this study")
        asg = db.get_assignment(aid)
        if asg is None:
            raise UnknownIdError(f"unknown assignment {aid!r}")
        if (asg["hit_id"], asg["worker_id"]) != (hid, wid):
            raise ConflictError(f"assignment {aid!r} belongs to another HIT/worker")
        parse = parse_ratings if s.rating else parse_answers
        ids, rows = parse(payload, s.by_id, s.page_ids(hit["batch_id"], aid))
        if s.rating:
            res = db.record_ratings(aid, hid, wid, s.design, rows, simulated=s.cfg.simulated)
        else:
            res = db.record_submission(aid, hid, wid, rows, simulated=s.cfg.simulated)
    except AlreadySubmittedError as e:
        return fail(e, stored=s.stored_of(db.get_assignment(aid), hit["batch_id"], aid))
    except (AnswerError, DBError) as e:
        return fail(e)
    return jsonify(status=res.status, assignment_id=res.assignment_id,
                   n_judgments=res.n_judgments)

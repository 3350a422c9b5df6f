"""A lab study's routes (blueprint ``lab``, ``--local`` only): a participant's link
(``GET /local/start?p=TOKEN``, ``mturk.tokens``) and the same claim as JSON
(``POST /api/local/claim {"token"}``, the simulator's). Without a valid token: 403. The same
token is the same participant, and gets their open assignment back."""

from __future__ import annotations

import json

from flask import Blueprint, abort, jsonify, redirect, request, url_for

from .errors import fail
from .loaded_study import loaded

bp = Blueprint("lab", __name__)


def _claim(token):
    s = loaded()
    if not s.cfg.local:
        abort(404)
    wid = s.keys.participant_of(token) if isinstance(token, str) else None
    if wid is None:
        abort(403, "this study needs your participant link (ask the experimenter)")
    if s.db.is_blocked(wid):
        abort(403, "this participant may not take part in this study")
    return wid, s.db.claim_local_assignment(wid, s.cfg.max_per_batch or None)


@bp.get("/local/start")
def local_start():
    wid, a = _claim(request.args.get("p"))
    if a is None:
        return "Every batch is done: thank you!\n", 200, {"Content-Type": "text/plain"}
    return redirect(url_for("task.task_page", assignmentId=a["assignment_id"],
                            hitId=a["hit_id"], workerId=wid))


@bp.post("/api/local/claim")
def local_claim():
    try:
        body = json.loads(request.get_data() or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        return fail(400, "expected a JSON body")
    wid, a = _claim(body.get("token") if isinstance(body, dict) else None)
    if a is None:
        return fail(409, "no batch left for this participant")
    return jsonify(assignment_id=a["assignment_id"], hit_id=a["hit_id"], worker_id=wid)

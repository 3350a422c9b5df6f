"""The Flask app: HIT pages, images, the submission endpoint, local-study links, health.

``create_app(AppConfig(...))``. Routes:

- ``GET /task?assignmentId&hitId&workerId&turkSubmitTo``: the HIT page (ExternalQuestion URL).
  ``assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE`` is MTurk's preview: the task, submit disabled.
  Otherwise the assignment is recorded as accepted; the page posts its answers to
  ``/api/submit``, then (HIT mode) the same answers to ``{turkSubmitTo}/mturk/externalSubmit``.
- ``GET /api/task?...``: the same task as JSON (the simulator uses it).
- ``POST /api/submit``: JSON answers (``mturk.page`` documents them); 200 created or duplicate,
  400 malformed, 404 unknown HIT or assignment, 409 replayed with other answers, 413 too big.
- ``GET /local/start[?workerId=]`` (``--local`` only): the participant link; gives the next batch.
  ``POST /api/local/claim`` is the same for programs.
- ``GET /img/<token>.png``: only the images of the loaded trials, by opaque token; no paths.
- ``GET /health``.

Every response carries a CSP whose ``frame-ancestors`` allows MTurk's worker sites only.

``python -m mturk.serve`` runs it on werkzeug's threaded server. Any WSGI server works too:
``app_from_env`` builds the app from ``PLIC_STUDY_TRIALS``, ``PLIC_STUDY_DB`` and
``PLIC_STUDY_LOCAL=1``, e.g. ``waitress-serve --call mturk.app:app_from_env``.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask, abort, jsonify, redirect, request, send_file, url_for

from codec.tables import read_table, resolve_path

from .db import ConflictError, DBError, StudyDB
from .page import (
    ID_RE,
    MTURK_FRAME_ANCESTORS,
    MTURK_SUBMIT_HOSTS,
    PREVIEW_ASSIGNMENT,
    STATIC,
    AnswerError,
    image_files,
    parse_answers,
    render_page,
)
from .schema import TRIALS_COLUMNS, TRIALS_ID

TOKEN_RE = re.compile(r"^[0-9a-f]{16}$")


@dataclass
class AppConfig:
    trials: str = field(default="runs/study/trials.csv", metadata={"help": "trials.csv"})
    db: str = field(default="runs/study/judgments.sqlite", metadata={"help": "SQLite file"})
    local: bool = field(default=False, metadata={
        "help": "lab study without MTurk: participant links, answers straight to the database"})
    max_body_bytes: int = field(default=256 * 1024, metadata={"help": "largest POST accepted"})
    max_per_batch: int = field(default=0, metadata={
        "help": "local mode: at most this many participants per batch (0 = no limit)"})
    study_id: str = field(default="study", metadata={"help": "study name in the database"})


def _csp() -> str:
    ancestors = " ".join(("'self'",) + MTURK_FRAME_ANCESTORS)
    forms = " ".join(("'self'",) + MTURK_SUBMIT_HOSTS)
    return ("default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
            f"form-action {forms}; frame-ancestors {ancestors}; base-uri 'none'")


def create_app(cfg: AppConfig) -> Flask:
    trials_path = Path(cfg.trials)
    df = read_table(trials_path, TRIALS_COLUMNS, TRIALS_ID)
    trials = df.to_dict("records")
    db = StudyDB(cfg.db)
    db.load_trials(trials, study_id=cfg.study_id, trials_csv=str(trials_path))
    by_id = {t["trial_id"]: t for t in trials}
    by_batch: dict[str, list[dict]] = {}
    for t in trials:
        by_batch.setdefault(t["batch_id"], []).append(t)
    images = image_files(trials, lambda p: resolve_path(p, trials_path))

    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_body_bytes
    app.extensions["plic_db"] = db
    app.extensions["plic_cfg"] = cfg

    def img_url(token: str) -> str:
        return f"/img/{token}.png"

    @app.teardown_request
    def close_db(_exc):
        # werkzeug's threaded server runs each request in a fresh thread: close that thread's
        # connection now instead of leaving it (and its file handles) to the garbage collector
        db.close()

    @app.after_request
    def headers(resp):
        resp.headers["Content-Security-Policy"] = _csp()
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp

    def fail(code: int, msg: str):
        return jsonify(error=msg), code

    def _ids_from_query():
        q = request.args
        aid, hid = q.get("assignmentId", ""), q.get("hitId", "")
        wid = q.get("workerId", "")
        if not ID_RE.match(hid) or not ID_RE.match(aid):
            abort(400, "hitId and assignmentId must be ids")
        hit = db.get_hit(hid)
        if hit is None or hit["batch_id"] not in by_batch:
            abort(404, "unknown HIT")
        if aid == PREVIEW_ASSIGNMENT:
            return hit, aid, "", True
        if not ID_RE.match(wid):
            abort(400, "workerId must be an id")
        if db.is_blocked(wid):
            abort(403, "this worker may not take part in this study")
        try:
            db.accept_assignment(aid, hid, wid)
        except ConflictError:
            abort(409, "assignment belongs to another HIT or worker")
        except DBError:
            abort(404, "unknown HIT")
        return hit, aid, wid, False

    @app.get("/health")
    def health():
        return jsonify(ok=True, schema_version=db.schema_version(), trials=len(trials),
                       batches=len(by_batch), local=cfg.local)

    @app.get("/")
    def index():
        if cfg.local:
            return redirect(url_for("local_start"))
        return "plic 2AFC study server: HIT pages are at /task (see mturk.app).\n", 200, {
            "Content-Type": "text/plain; charset=utf-8"}

    @app.get("/task")
    def task_page():
        hit, aid, wid, preview = _ids_from_query()
        local = hit["mode"] == "local"
        submit_to = request.args.get("turkSubmitTo", "")
        if not local and not preview and submit_to.rstrip("/") not in MTURK_SUBMIT_HOSTS:
            abort(400, "turkSubmitTo must be one of MTurk's submit hosts")
        mode = "preview" if preview else ("local" if local else "hit")
        html = render_page(by_batch[hit["batch_id"]], mode=mode, image_url=img_url,
                           assignment_id=aid if not preview else "", hit_id=hit["hit_id"],
                           worker_id=wid, submit_to="" if local else submit_to,
                           record_url="" if preview else url_for("submit"))
        return html, 200, {"Content-Type": "text/html; charset=utf-8",
                           "Cache-Control": "no-store"}

    app.add_url_rule("/hit", "hit_alias", task_page)

    @app.get("/api/task")
    def task_json():
        hit, aid, wid, preview = _ids_from_query()
        from .page import page_trials

        return jsonify(hit_id=hit["hit_id"], assignment_id=aid, worker_id=wid, preview=preview,
                       batch_id=hit["batch_id"],
                       trials=page_trials(by_batch[hit["batch_id"]], img_url))

    @app.post("/api/submit")
    def submit():
        payload = request.get_json(silent=True)
        if payload is None:
            return fail(400, "expected a JSON body")
        try:
            ids, rows = parse_answers(payload, by_id)
            res = db.record_submission(ids["assignment_id"], ids["hit_id"], ids["worker_id"],
                                       rows, simulated=payload.get("simulated") is True)
        except AnswerError as e:
            return fail(400, str(e))
        except ConflictError as e:
            return fail(409, str(e))
        except DBError as e:
            msg = str(e)
            return fail(404 if msg.startswith("unknown") else 400, msg)
        return jsonify(status=res.status, assignment_id=res.assignment_id,
                       n_judgments=res.n_judgments)

    def _claim(worker_id: str):
        if not cfg.local:
            abort(404)
        if not ID_RE.match(worker_id):
            abort(400, "workerId must be an id")
        if db.is_blocked(worker_id):
            abort(403, "this worker may not take part in this study")
        return db.claim_local_assignment(worker_id, cfg.max_per_batch or None)

    @app.get("/local/start")
    def local_start():
        wid = request.args.get("workerId") or f"P{secrets.token_hex(6)}"
        a = _claim(wid)
        if a is None:
            return "Every batch is done: thank you!\n", 200, {"Content-Type": "text/plain"}
        return redirect(url_for("task_page", assignmentId=a["assignment_id"], hitId=a["hit_id"],
                                workerId=wid))

    @app.post("/api/local/claim")
    def local_claim():
        body = request.get_json(silent=True) or {}
        wid = body.get("worker_id")
        if not isinstance(wid, str):
            return fail(400, "worker_id required")
        a = _claim(wid)
        if a is None:
            return fail(409, "no batch left for this worker")
        return jsonify(assignment_id=a["assignment_id"], hit_id=a["hit_id"], worker_id=wid)

    @app.get("/img/<name>")
    def image(name: str):
        token = name[:-4] if name.endswith(".png") else ""
        if not TOKEN_RE.match(token) or token not in images:
            abort(404)
        return send_file(images[token], mimetype="image/png", max_age=3600)

    @app.errorhandler(413)
    def too_big(e):
        return fail(413, "request too large")

    return app


def app_from_env() -> Flask:
    """The app for an external WSGI server, configured by environment variables."""
    return create_app(AppConfig(trials=os.environ["PLIC_STUDY_TRIALS"],
                                db=os.environ["PLIC_STUDY_DB"],
                                local=os.environ.get("PLIC_STUDY_LOCAL") == "1"))

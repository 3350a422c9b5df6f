"""The Flask app: HIT pages, images, the submission endpoint, lab-study links, health.

``create_app(AppConfig(...))``. Routes:

- ``GET /task?assignmentId&hitId&workerId&turkSubmitTo``: the HIT page (ExternalQuestion URL).
  ``assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE`` is MTurk's preview: the task, submit disabled.
  Otherwise, once every check has passed (ids, ``turkSubmitTo`` one of MTurk's hosts, worker not
  blocked, a place left on the HIT), the assignment is recorded as accepted; ``HEAD`` records
  nothing. The page posts its answers to ``/api/submit``, then (HIT mode) the same answers to
  ``{turkSubmitTo}/mturk/externalSubmit``. A reopened assignment whose answers are stored gets
  them back: they stand, and the page offers only to submit them to MTurk.
- ``GET /api/task?...``: the same task as JSON (the simulator uses it); records nothing.
- ``POST /api/submit``: JSON answers (``mturk.web.twoafc_page`` and ``rating_page`` document them).
  200 created or duplicate, 400 malformed (nested too deep included), 403 blocked worker, 404
  unknown HIT or assignment, 409 already submitted with other answers (the body's ``stored`` holds
  the answers that stand), 413 too big. Stored answers are unverified until ``mturk.market.collect``
  sees the assignment on MTurk.
- ``GET /local/start?p=TOKEN`` and ``POST /api/local/claim {"token"}`` (``--local`` only): a lab
  participant's link (``mturk.tokens``; ``mturk.serve --participants N`` writes them). Without a
  valid token: 403. The same token is the same participant, and gets their open assignment back.
- ``GET /img/<batch>/<scope>/<expiry>/<k>-<mac>.png``: a keyed, expiring image URL; nothing else
  serves images, and no path ever appears in a URL.
- ``GET /static/<name>``: the page's own regular files (symbolic links are never followed).
- ``GET /health``.

HTTP statuses come from the error's type (``STATUS``), never from its text. Every response
carries a CSP whose ``frame-ancestors`` allows MTurk's worker sites only.

``python -m mturk.serve`` runs it on werkzeug's threaded server. Any WSGI server works too:
``app_from_env`` builds the app from ``PLIC_STUDY_TRIALS``, ``PLIC_STUDY_DB``,
``PLIC_STUDY_LOCAL=1`` and ``PLIC_STUDY_SIMULATED=1``, e.g.
``waitress-serve --call mturk.web.app:app_from_env``.
"""

from __future__ import annotations

import json
import os
import stat
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from flask import Flask, abort, jsonify, redirect, request, send_file, url_for
from werkzeug.exceptions import HTTPException

from plic.paths import runs_dir
from plic.tables import read_table, resolve_path

from ..design.rating import RATING_DESIGNS
from ..design.study import study_design
from ..schema import TRIALS_COLUMNS, TRIALS_ID
from ..store.study_db import (
    AlreadySubmittedError,
    ConflictError,
    DBError,
    HitFullError,
    StudyDB,
    UnknownIdError,
)
from ..tokens import VIEWS
from .page import (
    ID_RE,
    MTURK_FRAME_ANCESTORS,
    MTURK_SUBMIT_HOSTS,
    PREVIEW_ASSIGNMENT,
    STATIC,
    AnswerError,
    image_size,
    view_source,
)
from .rating_page import parse_ratings, rating_page_trials, render_rating_page, stored_ratings
from .twoafc_page import page_trials, parse_answers, render_page, stored_answers


class BlockedError(DBError):
    """A blocked worker: nothing of theirs is taken."""


#: HTTP status per error type (the most specific class wins).
STATUS = {AnswerError: 400, DBError: 400, UnknownIdError: 404, ConflictError: 409,
          HitFullError: 409, BlockedError: 403}


def status_of(exc: Exception) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


@dataclass
class AppConfig:
    trials: str = field(default_factory=lambda: str(runs_dir() / "study" / "trials.csv"),
                        metadata={"help": "trials.csv"})
    db: str = field(default_factory=lambda: str(runs_dir() / "study" / "judgments.sqlite"),
                    metadata={"help": "SQLite file"})
    local: bool = field(default=False, metadata={
        "help": "lab study without MTurk: participant links, answers straight to the database"})
    simulated: bool = field(default=False, metadata={
        "help": "this server answers a simulated crowd: every submission is flagged simulated"})
    max_body_bytes: int = field(default=256 * 1024, metadata={"help": "largest POST accepted"})
    max_per_batch: int = field(default=0, metadata={
        "help": "local mode: at most this many participants per batch (0 = no limit)"})
    study_id: str = field(default="study", metadata={"help": "study name in the database"})
    image_ttl_s: int = field(default=4 * 3600, metadata={
        "help": "seconds an image URL of a page stays valid"})


def _csp() -> str:
    ancestors = " ".join(("'self'",) + MTURK_FRAME_ANCESTORS)
    forms = " ".join(("'self'",) + MTURK_SUBMIT_HOSTS)
    return ("default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
            f"form-action {forms}; frame-ancestors {ancestors}; base-uri 'none'")


def _static_files() -> dict[str, Path]:
    """The page's assets: regular files directly in STATIC, never symbolic links."""
    out = {}
    for p in STATIC.iterdir():
        st = os.lstat(p)
        if stat.S_ISREG(st.st_mode):
            out[p.name] = p
    return out


def create_app(cfg: AppConfig) -> Flask:
    trials_path = Path(cfg.trials)
    df = read_table(trials_path, TRIALS_COLUMNS, TRIALS_ID)
    trials = df.to_dict("records")
    design = study_design(trials_path)         # 2afc, or acr/dsis ratings (mturk.design.rating)
    rating = design in RATING_DESIGNS
    db = StudyDB(cfg.db)
    db.load_trials(trials, study_id=cfg.study_id, trials_csv=str(trials_path.resolve()))
    keys = db.keys()
    by_id = {t["trial_id"]: t for t in trials}
    by_batch: dict[str, list[dict]] = {}
    for t in trials:
        by_batch.setdefault(t["batch_id"], []).append(t)

    def resolve(p: str) -> Path:
        return resolve_path(p, trials_path)

    def size(t) -> tuple[int, int]:
        return image_size(str(resolve(t["ref_path"])))

    for t in trials:                            # fail at start on a missing or unreadable image
        for v in VIEWS:
            image_size(str(resolve(view_source(t, v)[1])))
    statics = _static_files()

    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_body_bytes
    app.extensions["plic_db"] = db
    app.extensions["plic_cfg"] = cfg

    @lru_cache(maxsize=8192)
    def order(batch_id: str, scope: str) -> tuple[str, ...]:
        return tuple(t["trial_id"] for t in keys.page_order(scope, by_batch[batch_id]))

    def page_ids(batch_id: str, scope: str) -> dict[str, str]:
        return keys.page_ids(scope, [t["trial_id"] for t in by_batch[batch_id]])

    def img_url(batch_id: str, scope: str):
        expires = int(time.time()) + cfg.image_ttl_s
        return lambda pos, view, t: keys.image_path(batch_id, scope, 3 * pos + view, expires)

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

    def fail(exc_or_code, msg: str | None = None, **extra):
        code = exc_or_code if isinstance(exc_or_code, int) else status_of(exc_or_code)
        return jsonify(error=msg if msg is not None else str(exc_or_code), **extra), code

    def stored_of(asg: dict | None, batch_id: str, scope: str) -> dict | None:
        if not asg or not asg.get("answers_sha"):
            return None
        rows = (db.ratings if rating else db.judgments)(asg["assignment_id"])
        by_trial = {r["trial_id"]: r for r in rows}
        ordered = [by_trial[t] for t in order(batch_id, scope) if t in by_trial]
        answers = (stored_ratings if rating else stored_answers)(ordered, keys, scope)
        return dict(answers=answers, saved_at=asg["submitted_at"])

    def _lookup(record: bool, probe: bool = False):
        """(hit, assignment id, worker id, preview, assignment) from the query; writes only
        when ``record`` and every check has passed. ``probe`` (HEAD): every check, no write."""
        q = request.args
        aid, hid, wid = q.get("assignmentId", ""), q.get("hitId", ""), q.get("workerId", "")
        if not ID_RE.match(hid) or not ID_RE.match(aid):
            abort(400, "hitId and assignmentId must be ids")
        hit = db.get_hit(hid)
        if hit is None or hit["batch_id"] not in by_batch:
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

    @app.get("/health")
    def health():
        return jsonify(ok=True, schema_version=db.schema_version(), trials=len(trials),
                       design=design,
                       batches=len(by_batch), local=cfg.local, simulated=cfg.simulated)

    @app.get("/")
    def index():
        if cfg.local:
            return "plic lab study: open your participant link (/local/start?p=...).\n", 200, {
                "Content-Type": "text/plain; charset=utf-8"}
        return "plic 2AFC study server: HIT pages are at /task (see mturk.web.app).\n", 200, {
            "Content-Type": "text/plain; charset=utf-8"}

    @app.route("/task", methods=["GET", "HEAD"])
    def task_page():
        head = request.method == "HEAD"
        hit, aid, wid, preview, asg = _lookup(record=not head, probe=head)
        if head:
            return "", 200, {"Content-Type": "text/html; charset=utf-8",
                             "Cache-Control": "no-store"}
        local = hit["mode"] == "local"
        batch = hit["batch_id"]
        scope = f"preview-{hit['hit_id']}" if preview else aid
        mode = "preview" if preview else ("local" if local else "hit")
        render = (lambda *a, **k: render_rating_page(design, *a, **k)) if rating else render_page
        html = render(by_batch[batch], mode=mode, keys=keys, scope=scope,
                      image_url=img_url(batch, scope), size=size,
                      assignment_id=aid if not preview else "", hit_id=hit["hit_id"],
                      worker_id=wid,
                      submit_to="" if local else request.args.get("turkSubmitTo", ""),
                      record_url="" if preview else url_for("submit"),
                      stored=stored_of(asg, batch, scope))
        return html, 200, {"Content-Type": "text/html; charset=utf-8",
                           "Cache-Control": "no-store"}

    app.add_url_rule("/hit", "hit_alias", task_page, methods=["GET", "HEAD"])

    @app.get("/api/task")
    def task_json():
        hit, aid, wid, preview, asg = _lookup(record=False)
        batch = hit["batch_id"]
        scope = f"preview-{hit['hit_id']}" if preview else aid
        made = (lambda *a: rating_page_trials(design, *a)) if rating else page_trials
        return jsonify(hit_id=hit["hit_id"], assignment_id=aid, worker_id=wid, preview=preview,
                       design=design,
                       trials=made(by_batch[batch], keys, scope, img_url(batch, scope), size),
                       stored=stored_of(asg, batch, scope))

    @app.post("/api/submit")
    def submit():
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
            if hit is None or hit["batch_id"] not in by_batch:
                raise UnknownIdError(f"unknown HIT {hid!r}")
            if db.is_blocked(wid):
                raise BlockedError("this worker may not take part in this study")
            asg = db.get_assignment(aid)
            if asg is None:
                raise UnknownIdError(f"unknown assignment {aid!r}")
            if (asg["hit_id"], asg["worker_id"]) != (hid, wid):
                raise ConflictError(f"assignment {aid!r} belongs to another HIT/worker")
            parse = parse_ratings if rating else parse_answers
            ids, rows = parse(payload, by_id, page_ids(hit["batch_id"], aid))
            if rating:
                res = db.record_ratings(aid, hid, wid, design, rows, simulated=cfg.simulated)
            else:
                res = db.record_submission(aid, hid, wid, rows, simulated=cfg.simulated)
        except AlreadySubmittedError as e:
            return fail(e, stored=stored_of(db.get_assignment(aid), hit["batch_id"], aid))
        except (AnswerError, DBError) as e:
            return fail(e)
        return jsonify(status=res.status, assignment_id=res.assignment_id,
                       n_judgments=res.n_judgments)

    def _claim(token):
        if not cfg.local:
            abort(404)
        wid = keys.participant_of(token) if isinstance(token, str) else None
        if wid is None:
            abort(403, "this study needs your participant link (ask the experimenter)")
        if db.is_blocked(wid):
            abort(403, "this participant may not take part in this study")
        return wid, db.claim_local_assignment(wid, cfg.max_per_batch or None)

    @app.get("/local/start")
    def local_start():
        wid, a = _claim(request.args.get("p"))
        if a is None:
            return "Every batch is done: thank you!\n", 200, {"Content-Type": "text/plain"}
        return redirect(url_for("task_page", assignmentId=a["assignment_id"], hitId=a["hit_id"],
                                workerId=wid))

    @app.post("/api/local/claim")
    def local_claim():
        try:
            body = json.loads(request.get_data() or b"{}")
        except (ValueError, UnicodeDecodeError, RecursionError):
            return fail(400, "expected a JSON body")
        wid, a = _claim(body.get("token") if isinstance(body, dict) else None)
        if a is None:
            return fail(409, "no batch left for this participant")
        return jsonify(assignment_id=a["assignment_id"], hit_id=a["hit_id"], worker_id=wid)

    @app.get("/img/<batch>/<scope>/<expires>/<name>")
    def image(batch: str, scope: str, expires: str, name: str):
        if batch not in by_batch:
            abort(404)
        k = keys.check_image(batch, scope, expires, name, time.time())
        if k is None or k // 3 >= len(by_batch[batch]):
            abort(404)
        t = by_id[order(batch, scope)[k // 3]]
        resp = send_file(resolve(view_source(t, VIEWS[k % 3])[1]), mimetype="image/png",
                         etag=False, last_modified=None, conditional=False)
        resp.headers["Cache-Control"] = "private, max-age=3600"
        return resp

    @app.get("/static/<name>")
    def static_file(name: str):
        p = statics.get(name)
        if p is None or not stat.S_ISREG(os.lstat(p).st_mode):
            abort(404)
        return send_file(p, max_age=300)

    @app.errorhandler(413)
    def too_big(e):
        return fail(413, "request too large")

    @app.errorhandler(HTTPException)
    def http_error(e):
        if request.path.startswith("/api/"):
            return fail(e.code or 500, e.description)
        return e

    return app


def app_from_env() -> Flask:
    """The app for an external WSGI server, configured by environment variables."""
    return create_app(AppConfig(trials=os.environ["PLIC_STUDY_TRIALS"],
                                db=os.environ["PLIC_STUDY_DB"],
                                local=os.environ.get("PLIC_STUDY_LOCAL") == "1",
                                simulated=os.environ.get("PLIC_STUDY_SIMULATED") == "1"))

"""The Flask app: HIT pages, images, the submission endpoint, lab-study links, health.

``create_app(AppConfig(...))`` loads the study once (``mturk.web.loaded_study``) and registers
one blueprint per kind of route: ``task`` (``mturk.web.task_routes``), ``lab``
(``lab_routes``), ``files`` (``file_routes``) and ``health`` (``health_routes``). Routes:

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
  the answers that stand), 413 too big, 415 not ``application/json``. Stored answers are
  unverified until ``mturk.market.collect`` sees the assignment on MTurk.
- ``GET /local/start?p=TOKEN`` and ``POST /api/local/claim {"token"}`` (``--local`` only): a lab
  participant's link (``mturk.tokens``; ``mturk.serve --participants N`` writes them). Without a
  valid token: 403. The same token is the same participant, and gets their open assignment back.
- ``GET /img/<batch>/<scope>/<expiry>/<k>-<mac>.png``: a keyed, expiring image URL; nothing else
  serves images, and no path ever appears in a URL.
- ``GET /static/<name>``: the page's own regular files (symbolic links are never followed).
- ``GET /health``.

A store that cannot answer now (``StoreUnavailableError``: its server restarting, a dropped
connection, a full disk) is a 503 with ``Retry-After`` on every route: nothing was written.

HTTP statuses come from the error's type (``mturk.web.errors.STATUS``), never from its text.
Every response carries a CSP whose ``frame-ancestors`` allows MTurk's worker sites only.

``python -m mturk.serve`` runs it on werkzeug's threaded server, ``--workers N`` on gunicorn with N
processes (``mturk.web.serve``). Any WSGI server works too:
``app_from_env`` builds the app from ``PLIC_STUDY_TRIALS``, ``PLIC_STUDY_DB``,
``PLIC_STUDY_LOCAL=1`` and ``PLIC_STUDY_SIMULATED=1``, e.g.
``waitress-serve --call mturk.web.app:app_from_env``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from flask import Flask, request
from werkzeug.exceptions import HTTPException

from plic.config_args import option
from plic.paths import runs_dir

from ..store.common import StoreUnavailableError
from . import file_routes, health_routes, lab_routes, task_routes
from .errors import fail
from .loaded_study import LoadedStudy
from .page import MTURK_FRAME_ANCESTORS, MTURK_SUBMIT_HOSTS


@dataclass
class AppConfig:
    trials: str = option(help="trials.csv",
                         factory=lambda: str(runs_dir() / "study" / "trials.csv"))
    db: str = option(help="SQLite file or postgresql:// URL",
                     factory=lambda: str(runs_dir() / "study" / "judgments.sqlite"))
    local: bool = option(False, "lab study without MTurk: participant links, answers straight to "
                                "the database")
    simulated: bool = option(False, "this server answers a simulated crowd: every submission is "
                                    "flagged simulated")
    max_body_bytes: int = option(256 * 1024, "largest POST accepted")
    max_per_batch: int = option(0, "local mode: at most this many participants per batch (0 = no "
                                   "limit)")
    study_id: str = option("study", "study name in the database")
    image_ttl_s: int = option(4 * 3600, "seconds an image URL of a page stays valid")
    db_timeout_s: float = option(10.0, "seconds a request waits for the store (a lock, a pooled "
                                       "connection) before 503")


def _csp() -> str:
    ancestors = " ".join(("'self'",) + MTURK_FRAME_ANCESTORS)
    forms = " ".join(("'self'",) + MTURK_SUBMIT_HOSTS)
    return ("default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
            f"form-action {forms}; frame-ancestors {ancestors}; base-uri 'none'")


def create_app(cfg: AppConfig) -> Flask:
    study = LoadedStudy(cfg)
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_body_bytes
    app.extensions["plic_study"] = study
    app.extensions["plic_db"] = study.db
    app.extensions["plic_cfg"] = cfg
    app.extensions["plic_statics"] = file_routes.static_files()
    for module in (health_routes, task_routes, lab_routes, file_routes):
        app.register_blueprint(module.bp)

    @app.before_request
    def hold_db():
        # one store connection for the whole request (PostgreSQL: one checkout from the pool)
        study.db.hold()

    @app.teardown_request
    def close_db(_exc):
        # werkzeug's threaded server runs each request in a fresh thread: close that thread's
        # connection now instead of leaving it (and its file handles) to the garbage collector
        study.db.close()

    @app.after_request
    def headers(resp):
        resp.headers["Content-Security-Policy"] = _csp()
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp

    @app.errorhandler(413)
    def too_big(e):
        return fail(413, "request too large")

    @app.errorhandler(StoreUnavailableError)
    def store_unavailable(e):
        # the store's server restarting, a dropped connection, a full disk: nothing was written,
        # and the same request may be sent again (every write is idempotent)
        return fail(e)

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

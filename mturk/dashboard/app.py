"""The requester's dashboard: a Flask app of its own (``create_dashboard``), never part of the
workers' HIT server (``mturk.web``), so no worker's URL reaches it.

Security: every page but the login needs a session made by the requester's secret (compared in
constant time); the session cookie is HttpOnly and SameSite=Strict, signed with a key made at
start (a restart logs everyone out); every form carries a CSRF token checked against the
session; no secret or token ever goes into a URL; responses are ``no-store`` with a strict
Content-Security-Policy (scripts and styles only from the app itself).
"""

from __future__ import annotations

import gc
import hmac
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from flask import (
    Flask,
    abort,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)

from plic.tables import resolve_path

from ..analysis.worker_quality import QualityRule
from ..market.base import Market
from ..store.study_db import StudyDB
from . import figures
from .actions import ACTIONS, ActionError, perform
from .svg import bar_chart, line_chart

HERE = Path(__file__).parent
PUBLIC = ("login", "static")
WORKERS_PER_PAGE = 100
TRIALS_PER_PAGE = 12
SORTABLE = ("worker_id", "assignments", "judgments", "sentinel_accuracy", "s_per_trial",
            "left_share", "side_p", "consensus_agreement", "repeats_inconsistent", "flags",
            "submitted", "approved", "rejected", "blocked")
FILTERS = ("all", "kept", "flagged", "blocked", "sentinels", "few-sentinels", "fast",
           "side-bias", "consensus", "inconsistent")


@dataclass
class DashboardConfig:
    db: str
    secret: str
    mode: str = "local"
    budget: Decimal | None = None
    block_name: str = "plic-soft-block-v1"
    rule: QualityRule = field(default_factory=QualityRule)
    include_unverified: bool = False
    poll_s: float = 5.0
    cache: bool = True


class Figures:
    """The figures of one state of the database (a snapshot, named by ``dash_change_stamp``),
    shared by the pages and the live endpoint.

    With ``background`` (the command), a thread recomputes the snapshot when the database has
    changed (checked every ``poll_s``) and pages render the latest one at once, saying when it
    was made: a page never waits for the study's aggregates, only the first one after start.
    Without it (tests), a page recomputes the figures when the database has changed since the
    last snapshot; with ``cache`` off, every time."""

    NAMES = ("overview", "workers", "results")

    def __init__(self, db: StudyDB, cfg: DashboardConfig, background: bool = False):
        self.db, self.cfg, self.background = db, cfg, background
        self._snap: dict | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None

    def _compute(self, stamp: str) -> dict:
        t0 = time.perf_counter()
        figs: dict = {"stamp": stamp}
        cfg, db = self.cfg, self.db
        figs["overview"] = figures.overview(db, cfg.mode, cfg.budget)
        o = figs["overview"]
        figs["workers"] = figures.workers(db, cfg.rule, cfg.include_unverified)
        if o["ratings"] and not o["judgments"]:
            from .ratings import rating_figures

            figs["ratings"] = rating_figures(db, cfg.include_unverified)
        else:
            figs["results"] = figures.results(db, cfg.rule, cfg.include_unverified,
                                              figs["workers"])
        figs["computed_at"] = time.strftime("%H:%M:%S")
        figs["compute_s"] = time.perf_counter() - t0
        return figs

    def refresh(self) -> dict:
        """Recompute the snapshot now if the database changed (or always, cache off)."""
        with self._lock:
            stamp = self.db.dash_change_stamp()
            if self._snap is None or self._snap["stamp"] != stamp or not self.cfg.cache:
                self._snap = self._compute(stamp)
                # the snapshot's many objects live until the next change: keep the garbage
                # collector's full passes, which would walk them during a page, off them
                gc.collect()
                gc.freeze()
            return self._snap

    def snapshot(self) -> dict:
        if self.background and self._snap is not None:
            return self._snap
        return self.refresh()

    def get(self, name: str):
        return self.snapshot()[name]

    def nudge(self) -> None:
        """Ask the background thread to look for changes now (after an action)."""
        self._wake.set()

    def start(self) -> None:
        if not self.background or self._thread is not None:
            return

        def loop():
            while True:
                self._wake.wait(self.cfg.poll_s)
                self._wake.clear()
                try:
                    self.refresh()
                except Exception as e:          # keep serving the last snapshot
                    print(f"mturk.dashboard: figures not refreshed: {e}", flush=True)
                finally:
                    self.db.close()

        self._thread = threading.Thread(target=loop, name="dashboard-figures", daemon=True)
        self._thread.start()

    @property
    def stamp(self) -> str:
        return self.db.dash_change_stamp()


def _num(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _bpp(v) -> str:
    try:
        return f"{float(v):.3f}"
    except (TypeError, ValueError):
        return str(v or "")


def create_dashboard(cfg: DashboardConfig, market: Market, background: bool = False) -> Flask:
    """The dashboard app; ``background``: figures refreshed by a thread (see ``Figures``)."""
    if not cfg.secret:
        raise ValueError("the dashboard needs a requester secret")
    app = Flask(__name__, template_folder=str(HERE / "templates"),
                static_folder=str(HERE / "static"), static_url_path="/static")
    app.secret_key = secrets.token_bytes(32)
    app.config.update(SESSION_COOKIE_NAME="plic_dashboard", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_SECURE=False,
                      MAX_CONTENT_LENGTH=64 * 1024)
    db = StudyDB(cfg.db)
    figs = Figures(db, cfg, background)
    figs.start()
    app.extensions["plic_dashboard"] = dict(db=db, market=market, cfg=cfg, figures=figs)
    app.jinja_env.filters["num"] = _num
    app.jinja_env.filters["bpp"] = _bpp

    def csrf_token() -> str:
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        return session["csrf"]

    app.jinja_env.globals.update(csrf_token=csrf_token, poll_s=cfg.poll_s)

    @app.before_request
    def guard():
        if request.method == "POST":
            sent = request.form.get("csrf_token", "")
            if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
                return "CSRF token missing or wrong: reload the page and try again", 400
        if request.endpoint not in PUBLIC and not session.get("auth"):
            if request.path.startswith("/api/"):
                return jsonify(error="log in first"), 401
            return redirect(url_for("login"))
        return None

    @app.after_request
    def headers(resp):
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Content-Security-Policy"] = (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp

    @app.teardown_request
    def _close(_exc):
        db.close()

    # -- login -------------------------------------------------------------------------------
    @app.route("/login", methods=["GET", "POST"])
    def login():
        error = ""
        if request.method == "POST":
            given = request.form.get("secret", "")
            if hmac.compare_digest(given.encode(), cfg.secret.encode()):
                name = (request.form.get("name", "").strip() or "requester")[:60]
                session.clear()                     # a fresh session: no fixation
                session["auth"] = True
                session["who"] = name
                session["csrf"] = secrets.token_urlsafe(32)
                return redirect(url_for("overview"))
            time.sleep(0.5)                         # slows guessing; the secret is long anyway
            error = "wrong secret"
        return render_template("login.html", error=error), (401 if error else 200)

    @app.post("/logout")
    def logout():
        session.clear()
        return redirect(url_for("login"))

    # -- pages -------------------------------------------------------------------------------
    def page(template: str, **kw):
        kw.setdefault("flash", session.pop("flash", None))
        snap = figs.snapshot()
        kw.setdefault("as_of", f"figures as of {snap['computed_at']} "
                      f"(computed in {snap['compute_s']:.2f} s)")
        return render_template(template, who=session.get("who", ""), mode=cfg.mode,
                               partial=request.headers.get("X-Partial") == "1", **kw)

    @app.get("/")
    def overview():
        o = figs.get("overview")
        hours = o["per_hour"][-48:]
        chart = bar_chart([(h["hour"][5:].replace("T", " ") + "h", h["n"]) for h in hours],
                          "answers per hour (last 48 active hours)")
        return page("overview.html", o=o, chart=chart, audit=db.audit_actions(20))

    @app.get("/workers")
    def workers():
        w = figs.get("workers")
        sort = request.args.get("sort", "worker_id")
        sort = sort if sort in SORTABLE else "worker_id"
        desc = request.args.get("dir", "asc") == "desc"
        flt = request.args.get("filter", "all")
        flt = flt if flt in FILTERS else "all"
        q = request.args.get("q", "").strip()[:60]
        v = w
        if flt == "kept":
            v = v[v.kept]
        elif flt == "flagged":
            v = v[v["flags"] != ""]
        elif flt == "blocked":
            v = v[v.blocked == 1]
        elif flt != "all":
            v = v[v["flags"].str.split(",").apply(lambda f: flt in f)]
        if q:
            v = v[v.worker_id.str.contains(q, regex=False)]
        v = v.sort_values([sort, "worker_id"], ascending=[not desc, True], na_position="last")
        n = len(v)
        pages = max(1, math.ceil(n / WORKERS_PER_PAGE))
        pg = min(max(1, request.args.get("page", 1, type=int)), pages)
        rows = v.iloc[(pg - 1) * WORKERS_PER_PAGE: pg * WORKERS_PER_PAGE].to_dict("records")
        return page("workers.html", rows=rows, n=n, total=len(w), sort=sort, desc=desc,
                    flt=flt, q=q, pg=pg, pages=pages, sortable=SORTABLE, filters=FILTERS)

    @app.get("/workers/<worker_id>")
    def worker(worker_id: str):
        info = db.get_worker(worker_id)
        if info is None:
            abort(404)
        w = figs.get("workers")
        row = w[w.worker_id == worker_id].to_dict("records")
        asg = db.dash_worker_assignments(worker_id)
        n, trials = db.dash_worker_judgments(worker_id, 1, 0)
        rating = n == 0
        if rating:
            n, _ = db.dash_worker_ratings(worker_id, 1, 0)
        pages = max(1, math.ceil(n / TRIALS_PER_PAGE))
        pg = min(max(1, request.args.get("page", 1, type=int)), pages)
        off = (pg - 1) * TRIALS_PER_PAGE
        items = (db.dash_worker_ratings if rating else db.dash_worker_judgments)(
            worker_id, TRIALS_PER_PAGE, off)[1]
        return page("worker.html", wid=worker_id, info=info, row=row[0] if row else None,
                    assignments=asg, items=items, rating=rating, n=n, pg=pg, pages=pages,
                    audit=db.audit_actions(50, worker_id=worker_id))

    @app.get("/results")
    def results():
        if "ratings" in figs.snapshot():
            rf = figs.get("ratings")
            return page("ratings.html", r=rf, chart=rf.chart)
        r = figs.get("results")
        series = []
        for codec, g in r.ranking.groupby("codec", sort=True):
            series.append((codec, [(row.mean_bpp, row.elo, row.elo_lo, row.elo_hi)
                                   for row in g.itertuples()]))
        chart = line_chart(series, "bpp (mean shown, per target)", "Elo (Bradley-Terry)",
                           "preference against bpp, 95% bootstrap intervals")
        wins = []
        for codec, g in r.ranking.groupby("codec", sort=True):
            wins.append((codec, [(row.mean_bpp, row.wins / row.comparisons, math.nan, math.nan)
                                 for row in g.itertuples() if row.comparisons]))
        chart_wins = line_chart(wins, "bpp (mean shown, per target)", "share of comparisons won",
                                "share preferred against bpp")
        return page("results.html", r=r, chart=chart, chart_wins=chart_wins,
                    ranking=r.ranking.to_dict("records"), pairs=r.pairs.to_dict("records"))

    @app.get("/api/live.json")
    def live():
        snap = figs.snapshot()
        o = snap["overview"]
        return jsonify(stamp=snap["stamp"], db_stamp=figs.stamp, as_of=snap["computed_at"],
                       overview={k: v for k, v in o.items() if k != "per_hour"})

    @app.get("/img/<trial_id>/<which>")
    def image(trial_id: str, which: str):
        if which not in ("ref", "a", "b"):
            abort(404)
        t = db.dash_trial_paths(trial_id)
        base = db.trials_csv_path()
        if t is None or base is None:
            abort(404)
        p = resolve_path(t[f"{which}_path"], base)
        if not Path(p).is_file():
            abort(404)
        return send_file(p, mimetype="image/png", max_age=0)

    # -- actions -------------------------------------------------------------------------------
    @app.get("/confirm/<action>/<target>")
    def confirm(action: str, target: str):
        if action not in ACTIONS:
            abort(404)
        kind, needs = ACTIONS[action]
        asg = db.get_assignment(target) if kind == "assignment" else None
        if (kind == "assignment" and asg is None) or (kind == "worker" and
                                                      db.get_worker(target) is None):
            abort(404)
        return page("confirm.html", nopoll=True, action=action, target=target, kind=kind,
                    needs=needs, asg=asg, worker=asg["worker_id"] if asg else target,
                    action_id=secrets.token_urlsafe(16))

    @app.post("/act")
    def act():
        action, target = request.form.get("action", ""), request.form.get("target", "")
        action_id = request.form.get("action_id", "")
        fields = {k: request.form.get(k, "") for k in ("reason", "amount")}
        if not action_id or len(action_id) > 64:
            return "the form lost its action id: open the confirmation again", 400
        try:
            row = perform(db, market, cfg.mode, action, target, fields,
                          session.get("who", "requester"), action_id, cfg.block_name)
        except ActionError as e:
            return page("confirm.html", nopoll=True, action=action, target=target,
                        kind=ACTIONS.get(action, ("", ()))[0],
                        needs=ACTIONS.get(action, ("", ()))[1], asg=db.get_assignment(target),
                        worker=target, action_id=action_id, error=str(e)), 400
        figs.nudge()
        session["flash"] = dict(outcome=row["outcome"], text=f"{row['action']} {row['target']}: "
                                f"{row['outcome']} ({row['market_answer']})")
        return redirect(url_for("worker", worker_id=row["worker_id"]) + "#audit")

    return app

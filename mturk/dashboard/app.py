"""The requester's dashboard: a Flask app of its own (``create_dashboard``), never part of the
workers' HIT server (``mturk.web``), so no worker's URL reaches it.

Security: every page but the login needs a session made by the requester's secret (compared in
constant time); the session cookie is HttpOnly and SameSite=Strict, signed with a key made at
start (a restart logs everyone out); every form carries a CSRF token checked against the
session; no secret or token ever goes into a URL; responses are ``no-store`` with a strict
Content-Security-Policy (scripts and styles only from the app itself).
"""

from __future__ import annotations

import hmac
import math
import secrets
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
    """The figures of one state of the database, computed once per change (``dash_change_stamp``)
    and shared by the pages and the live endpoint."""

    def __init__(self, db: StudyDB, cfg: DashboardConfig):
        self.db, self.cfg = db, cfg
        self._stamp, self._memo = None, {}

    def get(self, name: str):
        stamp = self.db.dash_change_stamp()
        if stamp != self._stamp or not self.cfg.cache:
            self._stamp, self._memo = stamp, {}
        if name not in self._memo:
            self._memo[name] = self._compute(name)
        return self._memo[name]

    def _compute(self, name: str):
        cfg, db = self.cfg, self.db
        if name == "overview":
            return figures.overview(db, cfg.mode, cfg.budget)
        if name == "workers":
            return figures.workers(db, cfg.rule, cfg.include_unverified)
        if name == "results":
            return figures.results(db, cfg.rule, cfg.include_unverified, self.get("workers"))
        if name == "ratings":
            from .ratings import rating_figures

            return rating_figures(db, cfg.include_unverified)
        raise KeyError(name)

    @property
    def stamp(self) -> str:
        return self.db.dash_change_stamp()


def _num(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def create_dashboard(cfg: DashboardConfig, market: Market) -> Flask:
    if not cfg.secret:
        raise ValueError("the dashboard needs a requester secret")
    app = Flask(__name__, template_folder=str(HERE / "templates"),
                static_folder=str(HERE / "static"), static_url_path="/static")
    app.secret_key = secrets.token_bytes(32)
    app.config.update(SESSION_COOKIE_NAME="plic_dashboard", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_SECURE=False,
                      MAX_CONTENT_LENGTH=64 * 1024)
    db = StudyDB(cfg.db)
    figs = Figures(db, cfg)
    app.extensions["plic_dashboard"] = dict(db=db, market=market, cfg=cfg, figures=figs)
    app.jinja_env.filters["num"] = _num

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
        ov = figs.get("overview")
        if ov["ratings"] and not ov["judgments"]:
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
        o = figs.get("overview")
        return jsonify(stamp=figs.stamp, overview={k: v for k, v in o.items()
                                                   if k not in ("per_hour",)})

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
        session["flash"] = dict(outcome=row["outcome"], text=f"{row['action']} {row['target']}: "
                                f"{row['outcome']} ({row['market_answer']})")
        return redirect(url_for("worker", worker_id=row["worker_id"]) + "#audit")

    return app

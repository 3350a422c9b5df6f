"""What the requester's dashboard reads (mixed into StudyDB), aggregated in SQL, and its audit
table (migration ``0004_dashboard_audit``).

Every method here returns rows already grouped by the database (per HIT group, per worker, per
assignment, per trial, per codec pair), never one row per judgment, except the one worker's page
(``dash_worker_judgments``, paged). ``mturk.dashboard`` turns them into the figures of
``mturk.analysis.aggregate`` and ``mturk.analysis.worker_quality``; the SQL is plain enough for
SQLite (3.25+, window functions) and PostgreSQL alike.

"Counted" is ``mturk.analysis.aggregate.counted``'s rule: verified (unless ``unverified``),
submitted or approved, by a worker not blocked.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import common
from .common import DBError

AUDIT_OUTCOMES = ("pending", "done", "failed")


def _counted(unverified: bool) -> str:
    return ("a.status IN ('submitted', 'approved') AND w.blocked = 0"
            + ("" if unverified else " AND a.verified_at IS NOT NULL"))


def _in(column: str, values: Sequence[str]) -> tuple[str, list]:
    """``column IN (?, ...)``, or a false condition for no values."""
    if not values:
        return "1 = 0", []
    return f"{column} IN ({', '.join('?' * len(values))})", list(values)


_COUNTED_J = ("FROM judgments j JOIN assignments a ON a.assignment_id = j.assignment_id "
              "JOIN workers w ON w.worker_id = a.worker_id "
              "JOIN trials t ON t.trial_id = j.trial_id")


class DashboardQueries:
    """Methods of ``StudyDB`` for ``mturk.dashboard``: read-only aggregates and the audit."""

    # -- the overview -------------------------------------------------------------------------
    def dash_counts(self) -> dict:
        """HITs by status, places published, assignments by status, answers, workers, blocked,
        and the first and last answer's time."""
        hits = {r["status"]: r["n"] for r in self._rows(
            "SELECT status, COUNT(*) AS n FROM hits GROUP BY status")}
        places = self._one("SELECT COALESCE(SUM(max_assignments), 0) AS n FROM hits "
                           "WHERE question IS NULL OR question <> 'local'")["n"]
        asg = {r["status"]: r["n"] for r in self._rows(
            "SELECT status, COUNT(*) AS n FROM assignments GROUP BY status")}
        row = self._one("SELECT COUNT(*) AS n, MIN(created_at) AS lo, MAX(created_at) AS hi "
                        "FROM judgments")
        rrow = self._one("SELECT COUNT(*) AS n, MIN(created_at) AS lo, MAX(created_at) AS hi "
                         "FROM ratings")
        workers = self._one("SELECT COUNT(*) AS n, COALESCE(SUM(blocked), 0) AS b FROM workers")
        return dict(hits=hits, places=int(places), assignments=asg,
                    judgments=int(row["n"]), ratings=int(rrow["n"]),
                    first_answer=min([x for x in (row["lo"], rrow["lo"]) if x], default=None),
                    last_answer=max([x for x in (row["hi"], rrow["hi"]) if x], default=None),
                    workers=int(workers["n"]), blocked=int(workers["b"]))

    def dash_hit_groups(self, mode: str | None = None) -> list[dict]:
        """HITs with a reward, grouped by (reward, max_assignments, open): how many HITs, and
        their assignments approved, rejected and submitted, and the places still open (per HIT
        ``max(0, max - approved - rejected)``, as ``mturk.market.manage.cost_so_far`` counts)."""
        where = "h.reward IS NOT NULL AND h.reward <> ''" + (" AND h.mode = ?" if mode else "")
        return self._rows(
            "SELECT reward, max_assignments, closed, COUNT(*) AS hits, SUM(approved) AS approved, "
            "SUM(rejected) AS rejected, SUM(submitted) AS submitted, SUM(CASE WHEN "
            "max_assignments - approved - rejected > 0 THEN max_assignments - approved - rejected "
            "ELSE 0 END) AS open_places FROM (SELECT h.hit_id, h.reward, h.max_assignments, "
            "CASE WHEN h.status IN ('expired', 'disposed') THEN 1 ELSE 0 END AS closed, "
            "COALESCE(SUM(CASE WHEN a.status = 'approved' THEN 1 ELSE 0 END), 0) AS approved, "
            "COALESCE(SUM(CASE WHEN a.status = 'rejected' THEN 1 ELSE 0 END), 0) AS rejected, "
            "COALESCE(SUM(CASE WHEN a.status = 'submitted' THEN 1 ELSE 0 END), 0) AS submitted "
            f"FROM hits h LEFT JOIN assignments a ON a.hit_id = h.hit_id WHERE {where} "
            "GROUP BY h.hit_id, h.reward, h.max_assignments, h.status) per_hit "
            "GROUP BY reward, max_assignments, closed ORDER BY reward, max_assignments, closed",
            [mode] if mode else [])

    def dash_paid_bonuses(self, mode: str | None = None) -> list[dict]:
        """Paid bonuses of the mode's HITs, grouped by amount: [{amount, n}]."""
        where = "b.paid_at IS NOT NULL" + (" AND h.mode = ?" if mode else "")
        return self._rows(
            "SELECT b.amount, COUNT(*) AS n FROM bonuses b JOIN assignments a "
            "ON a.assignment_id = b.assignment_id JOIN hits h ON h.hit_id = a.hit_id "
            f"WHERE {where} GROUP BY b.amount ORDER BY b.amount", [mode] if mode else [])

    def dash_answers_per_hour(self) -> list[dict]:
        """[{hour: 'YYYY-MM-DDTHH', n}] over judgments and ratings, oldest first."""
        return self._rows(
            "SELECT hour, SUM(n) AS n FROM (SELECT substr(created_at, 1, 13) AS hour, "
            "COUNT(*) AS n FROM judgments GROUP BY substr(created_at, 1, 13) UNION ALL "
            "SELECT substr(created_at, 1, 13) AS hour, COUNT(*) AS n FROM ratings "
            "GROUP BY substr(created_at, 1, 13)) x GROUP BY hour ORDER BY hour")

    # -- workers ------------------------------------------------------------------------------
    def dash_workers(self, unverified: bool = False) -> list[dict]:
        """Every worker with their counted judgments' counts: assignments, judgments,
        sentinels, sentinel_correct, left (answers on the side shown left), and the
        database's own fields (blocked, blocked_reason, qc_flags), plus all their assignments
        by status (any status, counted or not) and those with answers (``answered``; verified
        ones ``answered_verified``)."""
        return self._rows(
            "SELECT w.worker_id, w.blocked, w.blocked_reason, w.qc_flags, "
            "COALESCE(c.assignments, 0) AS assignments, COALESCE(c.judgments, 0) AS judgments, "
            "COALESCE(c.sentinels, 0) AS sentinels, "
            "COALESCE(c.sentinel_correct, 0) AS sentinel_correct, COALESCE(c.n_left, 0) AS n_left, "
            "COALESCE(s.n_all, 0) AS all_assignments, COALESCE(s.n_submitted, 0) AS submitted, "
            "COALESCE(s.n_approved, 0) AS approved, COALESCE(s.n_rejected, 0) AS rejected, "
            "COALESCE(s.answered, 0) AS answered, COALESCE(s.answered_verified, 0) "
            "AS answered_verified FROM workers w LEFT JOIN (SELECT a.worker_id, "
            "COUNT(DISTINCT j.assignment_id) AS assignments, COUNT(*) AS judgments, "
            "SUM(CASE WHEN t.kind = 'sentinel' THEN 1 ELSE 0 END) AS sentinels, "
            "SUM(CASE WHEN t.kind = 'sentinel' AND j.choice = t.expected THEN 1 ELSE 0 END) "
            "AS sentinel_correct, SUM(CASE WHEN j.choice = j.shown_left THEN 1 ELSE 0 END) "
            f"AS n_left {_COUNTED_J} WHERE {_counted(unverified)} GROUP BY a.worker_id) c "
            "ON c.worker_id = w.worker_id LEFT JOIN (SELECT worker_id, COUNT(*) AS n_all, "
            "SUM(CASE WHEN status = 'submitted' THEN 1 ELSE 0 END) AS n_submitted, "
            "SUM(CASE WHEN status = 'approved' THEN 1 ELSE 0 END) AS n_approved, "
            "SUM(CASE WHEN status = 'rejected' THEN 1 ELSE 0 END) AS n_rejected, "
            "SUM(CASE WHEN answers_sha IS NOT NULL THEN 1 ELSE 0 END) AS answered, "
            "SUM(CASE WHEN answers_sha IS NOT NULL AND verified_at IS NOT NULL THEN 1 ELSE 0 "
            "END) AS answered_verified FROM assignments GROUP BY worker_id) s "
            "ON s.worker_id = w.worker_id "
            "ORDER BY w.worker_id")

    def dash_assignment_times(self, unverified: bool = False) -> list[dict]:
        """Per counted assignment with judgments: worker_id, n (judgments), median_rt_ms (the
        median of its response times, the mean of the two middle ones for an even count; None
        without any), simulated, accepted_at, submitted_at."""
        return self._rows(
            "WITH ranked AS (SELECT j.assignment_id, j.rt_ms, ROW_NUMBER() OVER "
            "(PARTITION BY j.assignment_id ORDER BY j.rt_ms) AS k, COUNT(*) OVER "
            "(PARTITION BY j.assignment_id) AS m FROM judgments j JOIN assignments a "
            "ON a.assignment_id = j.assignment_id JOIN workers w ON w.worker_id = a.worker_id "
            f"WHERE j.rt_ms IS NOT NULL AND {_counted(unverified)}), "
            "med AS (SELECT assignment_id, AVG(rt_ms * 1.0) AS median_rt_ms FROM ranked "
            "WHERE k IN ((m + 1) / 2, (m + 2) / 2) GROUP BY assignment_id), "
            "cnt AS (SELECT j.assignment_id, COUNT(*) AS n FROM judgments j JOIN assignments a "
            "ON a.assignment_id = j.assignment_id JOIN workers w ON w.worker_id = a.worker_id "
            f"WHERE {_counted(unverified)} GROUP BY j.assignment_id) "
            "SELECT a.assignment_id, a.worker_id, cnt.n, med.median_rt_ms, a.simulated, "
            "a.accepted_at, a.submitted_at FROM cnt JOIN assignments a "
            "ON a.assignment_id = cnt.assignment_id LEFT JOIN med "
            "ON med.assignment_id = cnt.assignment_id ORDER BY a.worker_id, a.assignment_id")

    def dash_repeats(self, unverified: bool = False) -> list[dict]:
        """Per worker: repeats (repeat judgments whose original the same assignment answered)
        and how many of them were answered differently."""
        return self._rows(
            "SELECT a.worker_id, COUNT(*) AS repeats, "
            "SUM(CASE WHEN j.choice <> o.choice THEN 1 ELSE 0 END) AS inconsistent "
            f"{_COUNTED_J} JOIN judgments o ON o.assignment_id = j.assignment_id "
            f"AND o.trial_id = t.repeat_of WHERE t.repeat_of <> '' AND {_counted(unverified)} "
            "GROUP BY a.worker_id")

    def dash_consensus(self, trusted: Sequence[str], unverified: bool = False) -> list[dict]:
        """Per worker: test trials (not repeats) with a leave-one-out consensus of the
        ``trusted`` workers (at least two others, no tie) and how many of their answers agree
        with it (``mturk.analysis.worker_quality``'s ``consensus``)."""
        cond, args = _in("a.worker_id", trusted)
        return self._rows(
            "WITH c AS (SELECT a.worker_id, j.trial_id, CASE WHEN j.choice = 'b' THEN 1 ELSE 0 "
            f"END AS isb, CASE WHEN {cond} THEN 1 ELSE 0 END AS mine {_COUNTED_J} "
            f"WHERE t.kind = 'test' AND t.repeat_of = '' AND {_counted(unverified)}), "
            "v AS (SELECT trial_id, SUM(isb * mine) AS nb, SUM(mine) AS n FROM c "
            "GROUP BY trial_id), o AS (SELECT c.worker_id, c.isb, v.nb - c.mine * c.isb AS nb, "
            "v.n - c.mine AS n FROM c JOIN v ON v.trial_id = c.trial_id) "
            "SELECT worker_id, COUNT(*) AS trials, SUM(CASE WHEN (isb = 1 AND 2 * nb > n) OR "
            "(isb = 0 AND 2 * nb < n) THEN 1 ELSE 0 END) AS agree FROM o "
            "WHERE n >= 2 AND 2 * nb <> n GROUP BY worker_id", args)

    # -- results ------------------------------------------------------------------------------
    def dash_trial_votes(self, workers: Sequence[str], unverified: bool = False) -> list[dict]:
        """Per test trial that makes labels (not a repeat), over the counted judgments of
        ``workers``: trial_id, a_codec, b_codec, target_bpp, a_bpp, b_bpp, nb (chose B), n, and
        the same of the odd judgments (1st, 3rd, ... by judgment id; ``nb_odd``, ``n_odd``):
        two halves. The ranking's win counts and mean bpp come from these rows too."""
        cond, args = _in("a.worker_id", workers)
        return self._rows(
            "WITH k AS (SELECT j.trial_id, t.a_codec, t.b_codec, t.target_bpp, t.a_bpp, t.b_bpp, "
            "CASE WHEN j.choice = 'b' THEN 1 ELSE 0 END AS isb, ROW_NUMBER() OVER "
            "(PARTITION BY j.trial_id ORDER BY j.judgment_id) % 2 AS odd "
            f"{_COUNTED_J} WHERE t.kind = 'test' AND t.repeat_of = '' AND {cond} AND "
            f"{_counted(unverified)}) SELECT trial_id, a_codec, b_codec, target_bpp, a_bpp, "
            "b_bpp, SUM(isb) AS nb, COUNT(*) AS n, SUM(isb * odd) AS nb_odd, SUM(odd) AS n_odd "
            "FROM k GROUP BY trial_id, a_codec, b_codec, target_bpp, a_bpp, b_bpp "
            "ORDER BY trial_id", args)

    def dash_simulated(self, unverified: bool = False) -> bool:
        """Whether any counted judgment or rating came from a simulated server."""
        r = self._one(
            "SELECT COUNT(*) AS n FROM assignments a JOIN workers w ON w.worker_id = a.worker_id "
            f"WHERE a.simulated = 1 AND {_counted(unverified)}")
        return bool(r and r["n"])

    def dash_submitted_since(self, since: str) -> int:
        """Assignments submitted at or after ``since`` (an ISO-8601 UTC time)."""
        return int(self._one("SELECT COUNT(*) AS n FROM assignments WHERE submitted_at >= ?",
                             (since,))["n"])

    # -- one worker -----------------------------------------------------------------------------
    def dash_worker_assignments(self, worker_id: str) -> list[dict]:
        """The worker's assignments with their HIT's batch and reward, and answers stored."""
        return self._rows(
            "SELECT a.assignment_id, a.hit_id, a.status, a.accepted_at, a.submitted_at, "
            "a.reviewed_at, a.feedback, a.verified_at, a.simulated, h.batch_id, h.reward, "
            "h.mode, (SELECT COUNT(*) FROM judgments j WHERE j.assignment_id = a.assignment_id) "
            "+ (SELECT COUNT(*) FROM ratings r WHERE r.assignment_id = a.assignment_id) "
            "AS answers FROM assignments a JOIN hits h ON h.hit_id = a.hit_id "
            "WHERE a.worker_id = ? ORDER BY a.submitted_at, a.assignment_id", (worker_id,))

    def dash_worker_judgments(self, worker_id: str, limit: int = 20,
                              offset: int = 0) -> tuple[int, list[dict]]:
        """(how many, one page of) the worker's judgments with their trials, oldest first."""
        return self._worker_answers(
            "judgments", "judgment_id", "x.choice, x.shown_left, x.rt_ms, a.status AS "
            "assignment_status, t.kind, t.expected, t.repeat_of, t.ref_path, t.a_path, "
            "t.b_path, t.a_codec, t.b_codec, t.a_bpp, t.b_bpp, t.target_bpp",
            worker_id, limit, offset)

    def dash_worker_ratings(self, worker_id: str, limit: int = 20,
                            offset: int = 0) -> tuple[int, list[dict]]:
        """(how many, one page of) the worker's ratings with their trials, oldest first."""
        return self._worker_answers(
            "ratings", "rating_id", "x.score, x.design, x.rt_ms, a.status AS assignment_status, "
            "t.ref_path, t.a_path, t.a_codec, t.a_bpp, t.target_bpp", worker_id, limit, offset)

    def _worker_answers(self, table: str, key: str, columns: str, worker_id: str, limit: int,
                        offset: int) -> tuple[int, list[dict]]:
        """(how many, one page of) the worker's rows of ``table`` (``x``; judgments or ratings,
        by ``key``, oldest first): ``key``, assignment and trial ids, then ``columns`` of
        ``x``, its assignment ``a`` and trial ``t``."""
        n = self._one(f"SELECT COUNT(*) AS n FROM {table} x JOIN assignments a "
                      "ON a.assignment_id = x.assignment_id WHERE a.worker_id = ?",
                      (worker_id,))["n"]
        rows = self._rows(
            f"SELECT x.{key}, x.assignment_id, x.trial_id, {columns} "
            f"FROM {table} x JOIN assignments a ON a.assignment_id = x.assignment_id "
            "JOIN trials t ON t.trial_id = x.trial_id WHERE a.worker_id = ? "
            f"ORDER BY x.{key} LIMIT ? OFFSET ?", (worker_id, int(limit), int(offset)))
        return int(n), rows

    def dash_trial_paths(self, trial_id: str) -> dict | None:
        """The shown files of one trial: ref_path, a_path, b_path (as in trials.csv)."""
        return self._one("SELECT ref_path, a_path, b_path FROM trials WHERE trial_id = ?",
                         (trial_id,))

    def dash_change_stamp(self) -> str:
        """Changes whenever an answer, an assignment's status, a worker's block or an audited
        action changes: what the dashboard's live refresh compares."""
        r = self._one(
            "SELECT (SELECT COALESCE(MAX(judgment_id), 0) FROM judgments) AS j, "
            "(SELECT COALESCE(MAX(rating_id), 0) FROM ratings) AS r, "
            "(SELECT COUNT(*) FROM assignments) AS a, "
            "(SELECT COALESCE(MAX(reviewed_at), '') FROM assignments) AS rv, "
            "(SELECT COALESCE(SUM(blocked), 0) FROM workers) AS b, "
            "(SELECT COUNT(*) FROM audit_actions) AS au, "
            "(SELECT COUNT(*) FROM bonuses WHERE paid_at IS NOT NULL) AS bo")
        return "-".join(str(r[k]) for k in ("j", "r", "a", "rv", "b", "au", "bo"))

    # -- the audit of the dashboard's actions ---------------------------------------------------
    def audit_begin(self, action_id: str, actor: str, action: str, target: str,
                    detail: str = "", worker_id: str = "") -> tuple[dict, bool]:
        """Record a requested action as ``pending`` before the market is called. Returns (its
        row, True) when new; (the row recorded before, False) when this ``action_id`` was
        already requested (a repeated form: the caller does nothing again)."""
        if not action_id or not actor or not action or not target:
            raise DBError("an audited action needs an id, an actor, an action and a target")
        with self._tx() as c:
            old = c.execute("SELECT * FROM audit_actions WHERE action_id = ?",
                            (action_id,)).fetchone()
            if old is not None:
                if (old["action"], old["target"]) != (action, target):
                    raise common.ConflictError(f"action id {action_id!r} names another action")
                return dict(old), False
            c.execute("INSERT INTO audit_actions (action_id, actor, action, target, worker_id, "
                      "detail, requested_at, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
                      (action_id, actor, action, target, worker_id, detail, common.utcnow()))
        return self.audit_action(action_id), True

    def audit_finish(self, action_id: str, outcome: str, market_answer: str) -> dict:
        """Close a pending action as ``done`` or ``failed`` with the market's answer."""
        if outcome not in ("done", "failed"):
            raise DBError("outcome must be done or failed")
        with self._tx() as c:
            n = c.execute("UPDATE audit_actions SET outcome = ?, market_answer = ?, "
                          "finished_at = ? WHERE action_id = ? AND outcome = 'pending'",
                          (outcome, market_answer, common.utcnow(), action_id)).rowcount
            if n != 1:
                raise common.UnknownIdError(f"no pending action {action_id!r}")
        return self.audit_action(action_id)

    def audit_action(self, action_id: str) -> dict | None:
        return self._one("SELECT * FROM audit_actions WHERE action_id = ?", (action_id,))

    def audit_actions(self, limit: int = 50, worker_id: str | None = None) -> list[dict]:
        """The latest audited actions, newest first (optionally those about one worker)."""
        if worker_id is None:
            return self._rows("SELECT * FROM audit_actions ORDER BY requested_at DESC, "
                              "finished_at DESC, action_id LIMIT ?", (int(limit),))
        return self._rows("SELECT * FROM audit_actions WHERE worker_id = ? ORDER BY "
                          "requested_at DESC, finished_at DESC, action_id LIMIT ?",
                          (worker_id, int(limit)))

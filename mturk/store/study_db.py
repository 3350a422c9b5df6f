"""The study database: trials, batches, HITs, assignments, judgments, workers, bonuses (SQLite).

One SQLite file (default ``runs/study/judgments.sqlite``) in WAL mode. Every write is one
transaction (``BEGIN IMMEDIATE``), so a process killed at any point leaves either the whole write or
none of it; an acknowledged write survives ``kill -9``. Callers never write SQL: use ``StudyDB``.

``StudyDB("postgresql://USER@HOST/DB")`` is the same API, schema and migrations on a PostgreSQL
server (``mturk.store.pg_store``; ``python -m mturk.store.copy`` moves a study between the two).
A store that cannot answer now (locked too long, disk full, its server down) raises
``StoreUnavailableError``: nothing was written, and the request may be sent again.

Schema changes are the ordered list ``mturk.store.migrations.MIGRATIONS`` (``PRAGMA user_version``
counts how many ran). To change the schema, append ``(name, sql)`` to that list; never edit an
entry that has shipped.

API (all methods of ``StudyDB(path)``; accepting and claiming assignments live in
``mturk.store.assignment_records``, workers, qualification types and bonuses in
``mturk.store.market_records``, the secret and verification in ``mturk.store.trust_records``,
ratings in ``mturk.store.rating_records``; what they share (modes, statuses, the typed errors,
timestamps, money) in ``mturk.store.common``; timestamps are UTC
ISO-8601 strings; money is a decimal string in USD such as ``"0.50"``, as MTurk writes it)::

    db = StudyDB(path)                        # creates/migrates; one connection per thread
    db.schema_version() -> int
    # studies, batches, trials
    db.load_trials(rows, study_id="study", trials_csv=None) -> int   # idempotent; rows as in
                                              # mturk.schema.TRIALS_COLUMNS (dicts or a DataFrame)
    db.batch_ids(study_id=None) -> list[str]
    db.batch_trials(batch_id) -> list[dict]   # trials.csv rows of one batch, in page order
    db.trial(trial_id) -> dict | None
    # HITs (mode: sandbox | live | local)
    db.add_hit(hit_id, batch_id, mode, *, hit_type_id=None, unique_request_token=None,
               reward=None, max_assignments=1, expires_at=None, status="assignable",
               question="external", url=None) -> dict      # idempotent on hit_id / token
    db.get_hit(hit_id) -> dict | None;  db.hit_by_token(token) -> dict | None
    db.list_hits(mode=None, status=None, batch_id=None) -> list[dict]
    db.set_hit_status(hit_id, status) -> None
    db.update_hit(hit_id, *, max_assignments=None, expires_at=None, status=None) -> None
    # assignments (status: accepted | submitted | approved | rejected | abandoned)
    db.accept_assignment(assignment_id, hit_id, worker_id, *, accepted_at=None) -> dict
        # idempotent; HitFullError when the HIT's places are taken (see the method)
    db.claim_local_assignment(worker_id, max_per_batch=None, stale_after_s=3600)
        -> dict | None                        # lab studies: the participant's assignment
    db.record_submission(assignment_id, hit_id, worker_id, answers, *, simulated=False,
                         require_accepted=True, submitted_at=None, accepted_at=None)
        -> SubmitResult
        # answers: [{"trial_id", "choice": "a"|"b", "shown_left": "a"|"b", "rt_ms"}]; a repeat
        # with the same answers is a no-op ("duplicate"), different answers raise
        # AlreadySubmittedError (the stored answers stand)
    db.upsert_assignment(assignment_id, hit_id, worker_id, status, *, submitted_at=None,
                         feedback=None) -> None                 # for collect.py
    db.set_assignment_status(assignment_id, status, feedback=None) -> None
    db.get_assignment(assignment_id) -> dict | None
    db.list_assignments(hit_id=None, status=None, worker_id=None) -> list[dict]
    db.judgments(assignment_id=None) -> list[dict]
    db.judgments_frame() -> pandas.DataFrame  # judgments joined with trials and assignments
    # workers
    db.get_worker(worker_id) -> dict | None;  db.list_workers() -> list[dict]
    db.set_worker_score(worker_id, correct, total) -> None
    db.block_worker(worker_id, reason) -> None;  db.unblock_worker(worker_id) -> None
    db.is_blocked(worker_id) -> bool
    # qualification types, per mode
    db.set_qualification_type(name, mode, qualification_type_id) -> None
    db.get_qualification_type(name, mode) -> str | None
    # bonuses (unique_token makes a retried payment idempotent)
    db.add_bonus(assignment_id, worker_id, amount, reason, unique_token) -> dict
    db.mark_bonus_paid(unique_token, paid_at=None) -> None
    db.list_bonuses(unpaid_only=False) -> list[dict]
    db.counts() -> dict[str, int]             # rows per table
    db.audit() -> dict                        # what an acknowledged write must have left: judgments
                                              # per assignment, duplicate (assignment, trial)
                                              # judgments, all judgments, the file's integrity
    # absolute ratings (mturk.store.rating_records): record_ratings, ratings, ratings_frame
    # trust (mturk.store.trust_records): the study secret, verification, quality flags
    db.secret() -> bytes;  db.keys() -> mturk.tokens.Keys
    db.verify_assignment(assignment_id, hit_id, worker_id, by="mturk") -> bool
    db.unverified_assignments() -> list[dict]
    db.set_worker_flags(worker_id, flags) -> None

Errors are typed: ``DBError`` (bad values), ``UnknownIdError``, ``ConflictError`` (and its
``AlreadySubmittedError``), ``HitFullError``; the study server maps each type to a status.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path

from plic.paths import runs_dir

from . import common
from .assignment_records import AssignmentRecords
from .common import (
    ASSIGNMENT_STATUSES,
    DEFAULT_ASSIGNMENT_DURATION_S,
    MODES,
    SIDES,
    AlreadySubmittedError,
    ConflictError,
    DBError,
    HitFullError,
    StoreUnavailableError,
    SubmitResult,
    UnknownIdError,
    money,
)
from .dashboard_queries import DashboardQueries
from .market_records import MarketRecords
from .migrations import MIGRATIONS, migrate
from .pg_store import PgBackend
from .rating_records import RatingRecords
from .trust_records import TrustRecords

#: the database's public names: ``StudyDB`` and what its callers catch and compare with (defined
#: in ``mturk.store.common``, which the record mixins share)
__all__ = ["ASSIGNMENT_STATUSES", "DEFAULT_ASSIGNMENT_DURATION_S", "MIGRATIONS", "MODES", "SIDES",
           "AlreadySubmittedError", "ConflictError", "DBError", "HitFullError",
           "StoreUnavailableError", "StudyDB", "SubmitResult", "UnknownIdError",
           "default_db_path", "is_url"]


def default_db_path() -> Path:
    return runs_dir() / "study" / "judgments.sqlite"


_TRIAL_FIELDS = ("trial_id", "batch_id", "ref_id", "ref_path", "a_id", "a_path", "b_id", "b_path",
                 "a_codec", "b_codec", "a_bpp", "b_bpp", "target_bpp", "left", "kind", "expected",
                 "repeat_of")

def is_url(path) -> bool:
    """Whether ``--db`` names a database server (``postgresql://...``) rather than a file."""
    return isinstance(path, str) and path.startswith(("postgresql://", "postgres://"))


#: SQLite's answers that mean "not now" (locked, disk full, I/O): the server answers 503
_SQLITE_UNAVAILABLE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL", "SQLITE_IOERR",
                       "SQLITE_CANTOPEN", "SQLITE_READONLY")


@contextmanager
def _sqlite_unavailable():
    try:
        yield
    except sqlite3.OperationalError as e:
        name = getattr(e, "sqlite_errorname", "") or ""
        text = str(e)
        if name.startswith(_SQLITE_UNAVAILABLE) or "locked" in text or "disk" in text:
            raise StoreUnavailableError(f"the study database is unavailable: {e}") from e
        raise


def _answers_sha(answers: list[dict]) -> str:
    import hashlib

    canon = sorted((a["trial_id"], a["choice"]) for a in answers)
    return hashlib.sha256(json.dumps(canon).encode()).hexdigest()


class StudyDB(AssignmentRecords, MarketRecords, TrustRecords, RatingRecords, DashboardQueries):
    """The study database at ``path`` (see the module docstring for the API)."""

    #: connections kept open between requests (``close``)
    KEEP_IDLE = 16

    def __init__(self, path: str | Path | None = None, timeout: float = 30.0):
        self.path = Path(path) if path is not None else default_db_path()
        self.url = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self._local = threading.local()
        self._idle: list[sqlite3.Connection] = []
        self._idle_lock = threading.Lock()
        self._migrate()

    def __new__(cls, path=None, *args, **kwargs):
        # ``StudyDB("postgresql://...")`` is the PostgreSQL store (``mturk.store.pg_store``): the
        # same API, schema and migrations on a database server
        if cls is StudyDB and is_url(path):
            return super().__new__(PgStudyDB)
        return super().__new__(cls)

    # -- connections and transactions (the backend's primitives: ``_tx``, ``_rows``, ``_one``,
    # ``_frame``, ``_migrate``, ``schema_version``, ``close``, ``_integrity``) ---------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None and self._idle:
            with self._idle_lock:
                conn = self._idle.pop() if self._idle else None
            if conn is not None:
                self._local.conn = conn
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")   # WAL + NORMAL: durable against kill -9
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Release this thread's connection (the study server calls it after each request): it
        goes back to a few kept open for the next request of any thread. Closing the last
        connection of a WAL file checkpoints it (an fsync): per request, that was 40% of the
        server's time (``python -m benchmarks.study_server --profile``)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        if not conn.in_transaction:
            with self._idle_lock:
                if len(self._idle) < self.KEEP_IDLE:
                    self._idle.append(conn)
                    return
        conn.close()

    def hold(self) -> None:
        """Keep this thread's connection until ``close()`` (the study server, per request;
        SQLite keeps it anyway)."""

    def dispose(self) -> None:
        """Release everything the store holds: this thread's connection and those kept idle
        (before a fork, or when done with the store)."""
        self.close()
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    @contextmanager
    def _tx(self, lock: str | None = None):
        """One write transaction. ``lock`` names what it writes (a HIT id) where the backend can
        lock less than everything; SQLite's ``BEGIN IMMEDIATE`` locks the whole file."""
        with _sqlite_unavailable():
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _rows(self, sql: str, args: Iterable = ()) -> list[dict]:
        with _sqlite_unavailable():
            return [dict(r) for r in self._conn().execute(sql, tuple(args)).fetchall()]

    def _one(self, sql: str, args: Iterable = ()) -> dict | None:
        with _sqlite_unavailable():
            r = self._conn().execute(sql, tuple(args)).fetchone()
        return dict(r) if r is not None else None

    def _frame(self, sql: str):
        import pandas as pd

        with _sqlite_unavailable():
            return pd.read_sql_query(sql, self._conn())

    def _integrity(self) -> str:
        return self._conn().execute("PRAGMA integrity_check").fetchone()[0]

    def _migrate(self) -> None:
        with self._tx() as c:
            migrate(c.execute("PRAGMA user_version").fetchone()[0], str(self.path), c.execute,
                    lambda v: c.execute(f"PRAGMA user_version={v}"))

    def schema_version(self) -> int:
        return self._one("PRAGMA user_version")["user_version"]

    # -- studies, batches, trials -----------------------------------------------------------
    def load_trials(self, rows, study_id: str = "study", trials_csv: str | None = None) -> int:
        """Register trials (dicts or a DataFrame with TRIALS_COLUMNS). Returns rows added.

        Loading the same trials again adds nothing; a trial id that exists with different
        content is an error (trial ids are stable, so changed content means a different study).
        """
        if hasattr(rows, "to_dict"):
            rows = rows.to_dict("records")
        rows = [{k: ("" if r.get(k) is None else str(r.get(k))) for k in _TRIAL_FIELDS}
                for r in rows]
        added = 0
        now = common.utcnow()
        with self._tx() as c:
            c.execute("INSERT OR IGNORE INTO studies VALUES (?, ?, ?)", (study_id, trials_csv, now))
            counts: dict[str, int] = {}
            for r in rows:
                counts[r["batch_id"]] = counts.get(r["batch_id"], 0) + 1
            for b, n in counts.items():
                c.execute("INSERT OR IGNORE INTO batches VALUES (?, ?, ?, ?)",
                          (b, study_id, n, now))
            pos: dict[str, int] = {}
            for r in rows:
                p = pos.get(r["batch_id"], 0)
                pos[r["batch_id"]] = p + 1
                old = c.execute("SELECT * FROM trials WHERE trial_id=?",
                                (r["trial_id"],)).fetchone()
                if old is not None:
                    same = all(str(old[k] or "") == r[k] for k in
                               ("batch_id", "a_id", "b_id", "kind", "expected", "repeat_of")) \
                        and old["left_side"] == r["left"]
                    if not same:
                        raise DBError(f"trial {r['trial_id']} already registered with other "
                                      "content: use a fresh database for a new study")
                    continue
                c.execute(
                    "INSERT INTO trials (trial_id, batch_id, position, ref_id, ref_path, a_id, "
                    "a_path, b_id, b_path, a_codec, b_codec, a_bpp, b_bpp, target_bpp, left_side, "
                    "kind, expected, repeat_of) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (r["trial_id"], r["batch_id"], p, r["ref_id"], r["ref_path"], r["a_id"],
                     r["a_path"], r["b_id"], r["b_path"], r["a_codec"], r["b_codec"], r["a_bpp"],
                     r["b_bpp"], r["target_bpp"], r["left"], r["kind"], r["expected"],
                     r["repeat_of"]))
                added += 1
        return added

    def batch_ids(self, study_id: str | None = None) -> list[str]:
        if study_id is None:
            return [r["batch_id"] for r in self._rows("SELECT batch_id FROM batches ORDER BY 1")]
        return [r["batch_id"] for r in
                self._rows("SELECT batch_id FROM batches WHERE study_id=? ORDER BY 1", (study_id,))]

    @staticmethod
    def _trial_row(r: dict) -> dict:
        out = {k: r[k] for k in _TRIAL_FIELDS if k != "left"}
        out["left"] = r["left_side"]
        return {k: ("" if v is None else v) for k, v in out.items()}

    def batch_trials(self, batch_id: str) -> list[dict]:
        rows = self._rows("SELECT * FROM trials WHERE batch_id=? ORDER BY position", (batch_id,))
        return [self._trial_row(r) for r in rows]

    def trial(self, trial_id: str) -> dict | None:
        r = self._one("SELECT * FROM trials WHERE trial_id=?", (trial_id,))
        return self._trial_row(r) if r else None

    # -- HITs --------------------------------------------------------------------------------
    def add_hit(self, hit_id: str, batch_id: str, mode: str, *, hit_type_id: str | None = None,
                unique_request_token: str | None = None, reward=None, max_assignments: int = 1,
                expires_at: str | None = None, status: str = "assignable",
                question: str = "external", url: str | None = None,
                assignment_duration_s: int | None = None) -> dict:
        if mode not in MODES:
            raise DBError(f"mode must be one of {MODES}, not {mode!r}")
        if max_assignments < 1:
            raise DBError("max_assignments must be >= 1")
        reward = money(reward) if reward is not None else None
        with self._tx() as c:
            if c.execute("SELECT 1 FROM batches WHERE batch_id=?", (batch_id,)).fetchone() is None:
                raise UnknownIdError(f"unknown batch {batch_id!r}")
            old = c.execute("SELECT * FROM hits WHERE hit_id=?", (hit_id,)).fetchone()
            if old is None and unique_request_token:
                old = c.execute("SELECT * FROM hits WHERE unique_request_token=?",
                                (unique_request_token,)).fetchone()
            if old is not None:
                return dict(old)
            c.execute("INSERT INTO hits (hit_id, hit_type_id, batch_id, unique_request_token, "
                      "status, mode, reward, max_assignments, question, url, created_at, "
                      "expires_at, assignment_duration_s) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                      (hit_id, hit_type_id, batch_id, unique_request_token, status, mode, reward,
                       max_assignments, question, url, common.utcnow(), expires_at,
                       assignment_duration_s))
        return self.get_hit(hit_id)

    def get_hit(self, hit_id: str) -> dict | None:
        return self._one("SELECT * FROM hits WHERE hit_id=?", (hit_id,))

    def hit_by_token(self, token: str) -> dict | None:
        return self._one("SELECT * FROM hits WHERE unique_request_token=?", (token,))

    def list_hits(self, mode: str | None = None, status: str | None = None,
                  batch_id: str | None = None) -> list[dict]:
        return self._select("hits", "created_at, hit_id", mode=mode, status=status,
                            batch_id=batch_id)

    def _select(self, table: str, order: str, **equal) -> list[dict]:
        """Rows of ``table`` whose columns equal the values given (None: any), in ``order``."""
        given = {col: val for col, val in equal.items() if val is not None}
        where = " AND ".join(f"{col}=?" for col in given)
        return self._rows(f"SELECT * FROM {table}" + (f" WHERE {where}" if where else "")
                          + f" ORDER BY {order}", list(given.values()))

    def set_hit_status(self, hit_id: str, status: str) -> None:
        with self._tx() as c:
            if c.execute("UPDATE hits SET status=? WHERE hit_id=?", (status, hit_id)).rowcount != 1:
                raise UnknownIdError(f"unknown HIT {hit_id!r}")

    def update_hit(self, hit_id: str, *, max_assignments: int | None = None,
                   expires_at: str | None = None, status: str | None = None) -> None:
        """Record an extension or expiry done on the marketplace (``mturk.market.manage``)."""
        with self._tx() as c:
            n = c.execute("UPDATE hits SET max_assignments=COALESCE(?, max_assignments), "
                          "expires_at=COALESCE(?, expires_at), status=COALESCE(?, status) "
                          "WHERE hit_id=?", (max_assignments, expires_at, status, hit_id)).rowcount
            if n != 1:
                raise UnknownIdError(f"unknown HIT {hit_id!r}")

    # -- assignments and judgments -----------------------------------------------------------
    @staticmethod
    def _ensure_worker(c, worker_id: str) -> None:
        c.execute("INSERT OR IGNORE INTO workers (worker_id, first_seen) VALUES (?, ?)",
                  (worker_id, common.utcnow()))

    def record_submission(self, assignment_id: str, hit_id: str, worker_id: str,
                          answers: list[Mapping], *, simulated: bool = False,
                          require_accepted: bool = True, submitted_at: str | None = None,
                          accepted_at: str | None = None) -> SubmitResult:
        """Store one assignment's answers, all or nothing. See the module docstring."""
        answers = [dict(a) for a in answers]
        for a in answers:
            if a.get("choice") not in SIDES or a.get("shown_left") not in SIDES:
                raise DBError("each answer needs choice and shown_left in {'a', 'b'}")

        def check(batch):
            for a in answers:
                if batch[a["trial_id"]]["left_side"] != a["shown_left"]:
                    raise DBError(f"trial {a['trial_id']}: shown_left disagrees with the trial")

        return self._submit_answers(
            assignment_id, hit_id, worker_id, answers, _answers_sha(answers), noun="answers",
            insert="INSERT INTO judgments (assignment_id, trial_id, choice, shown_left, rt_ms, "
                   "created_at) VALUES (?,?,?,?,?,?)",
            values=lambda a: (a["choice"], a["shown_left"]), check=check, simulated=simulated,
            require_accepted=require_accepted, submitted_at=submitted_at,
            accepted_at=accepted_at)

    def _submit_answers(self, assignment_id: str, hit_id: str, worker_id: str,
                        answers: list[dict], sha: str, *, noun: str, insert: str, values,
                        check, simulated: bool, require_accepted: bool,
                        submitted_at: str | None, accepted_at: str | None) -> SubmitResult:
        """The one submission path of judgments and ratings: a repeat of ``sha`` is a no-op
        (``common.open_submission``); the answers cover each trial of the HIT's batch exactly
        once (``check(batch)``: the design's own test, batch = {trial id: row}); then the
        assignment is marked submitted and each answer is inserted (``insert``: assignment
        id, trial id, ``values(answer)``, rt_ms, created_at), all in one transaction."""
        now = submitted_at or common.utcnow()
        with self._tx(lock=hit_id) as c:
            hit, old, dup = common.open_submission(c, assignment_id, hit_id, worker_id, sha,
                                                      len(answers), require_accepted)
            if dup is not None:
                return dup
            batch = {r["trial_id"]: r for r in c.execute(
                "SELECT trial_id, left_side FROM trials WHERE batch_id=?", (hit["batch_id"],))}
            ids = [a.get("trial_id") for a in answers]
            if len(set(ids)) != len(ids) or set(ids) != set(batch):
                raise DBError(f"{noun} must cover each of the {len(batch)} trials of batch "
                              f"{hit['batch_id']} exactly once")
            if check is not None:
                check(batch)
            self._ensure_worker(c, worker_id)
            common.mark_submitted(c, old, assignment_id, hit_id, worker_id, now=now,
                                     accepted_at=accepted_at, simulated=simulated, sha=sha)
            c.executemany(insert, [(assignment_id, a["trial_id"], *values(a),
                                    None if a.get("rt_ms") is None else int(a["rt_ms"]), now)
                                   for a in answers])
        return SubmitResult("created", assignment_id, len(answers))

    def upsert_assignment(self, assignment_id: str, hit_id: str, worker_id: str, status: str, *,
                          submitted_at: str | None = None, feedback: str | None = None) -> None:
        if status not in ASSIGNMENT_STATUSES:
            raise DBError(f"status must be one of {ASSIGNMENT_STATUSES}")
        with self._tx() as c:
            if c.execute("SELECT 1 FROM hits WHERE hit_id=?", (hit_id,)).fetchone() is None:
                raise UnknownIdError(f"unknown HIT {hit_id!r}")
            self._ensure_worker(c, worker_id)
            c.execute("INSERT INTO assignments (assignment_id, hit_id, worker_id, status, "
                      "submitted_at, feedback) VALUES (?,?,?,?,?,?) "
                      "ON CONFLICT(assignment_id) DO UPDATE SET status=excluded.status, "
                      "submitted_at=COALESCE(excluded.submitted_at, assignments.submitted_at), "
                      "feedback=COALESCE(excluded.feedback, assignments.feedback)",
                      (assignment_id, hit_id, worker_id, status, submitted_at, feedback))

    def set_assignment_status(self, assignment_id: str, status: str,
                              feedback: str | None = None) -> None:
        if status not in ASSIGNMENT_STATUSES:
            raise DBError(f"status must be one of {ASSIGNMENT_STATUSES}")
        with self._tx() as c:
            n = c.execute("UPDATE assignments SET status=?, reviewed_at=?, "
                          "feedback=COALESCE(?, feedback) WHERE assignment_id=?",
                          (status, common.utcnow(), feedback, assignment_id)).rowcount
            if n != 1:
                raise UnknownIdError(f"unknown assignment {assignment_id!r}")

    def get_assignment(self, assignment_id: str) -> dict | None:
        return self._one("SELECT * FROM assignments WHERE assignment_id=?", (assignment_id,))

    def list_assignments(self, hit_id: str | None = None, status: str | None = None,
                         worker_id: str | None = None) -> list[dict]:
        return self._select("assignments", "assignment_id", hit_id=hit_id, status=status,
                            worker_id=worker_id)

    def judgments(self, assignment_id: str | None = None) -> list[dict]:
        return self._select("judgments", "judgment_id", assignment_id=assignment_id)

    def judgments_frame(self):
        """Judgments joined with their trial, assignment, HIT and worker (a pandas DataFrame)."""
        sql = ("SELECT j.assignment_id, j.trial_id, j.choice, j.shown_left, j.rt_ms, "
               "a.worker_id, a.hit_id, a.status AS assignment_status, a.simulated, "
               "a.accepted_at, a.submitted_at, a.verified_at, a.verified_by, "
               "h.mode, h.question, t.batch_id, t.ref_id, t.ref_path, t.a_id, t.a_path, t.b_id, "
               "t.b_path, t.a_codec, t.b_codec, t.a_bpp, t.b_bpp, t.target_bpp, t.kind, "
               "t.expected, t.repeat_of, "
               "w.blocked FROM judgments j JOIN assignments a USING (assignment_id) "
               "JOIN hits h ON h.hit_id=a.hit_id JOIN trials t ON t.trial_id=j.trial_id "
               "JOIN workers w ON w.worker_id=a.worker_id ORDER BY j.judgment_id")
        return self._frame(sql)

    def counts(self) -> dict[str, int]:
        tables = ("studies", "batches", "trials", "hits", "workers", "assignments", "judgments",
                  "qualification_types", "bonuses")
        return {t: self._one(f"SELECT COUNT(*) AS n FROM {t}")["n"] for t in tables}

    def audit(self) -> dict:
        """What the database holds of the judgments, for checking it against the writes that
        were acknowledged (``benchmarks.study_server`` after a ``kill -9``): ``per_assignment``
        (assignment id -> its judgments, assignments with any), ``duplicates`` ((assignment,
        trial) pairs judged more than once), ``judgments`` (all of them) and ``integrity``
        (SQLite's ``integrity_check``: ``"ok"`` for a sound file)."""
        per = {r["assignment_id"]: r["n"] for r in self._rows(
            "SELECT a.assignment_id, COUNT(j.judgment_id) AS n FROM assignments a "
            "JOIN judgments j USING (assignment_id) GROUP BY 1")}
        dups = self._one("SELECT COUNT(*) AS n FROM (SELECT 1 FROM judgments GROUP BY "
                         "assignment_id, trial_id HAVING COUNT(*) > 1) d")["n"]
        return dict(per_assignment=per, duplicates=dups,
                    judgments=self._one("SELECT COUNT(*) AS n FROM judgments")["n"],
                    integrity=self._integrity())


class PgStudyDB(PgBackend, StudyDB):
    """``StudyDB`` on a PostgreSQL server: ``StudyDB("postgresql://...")`` makes one
    (``mturk.store.pg_store``: the same API, schema and migrations)."""

"""The study database's schema, as an ordered list of migrations (see ``mturk.store.study_db``).

``PRAGMA user_version`` counts how many have run. To change the schema, append a new
``(name, sql)`` entry; never edit or reorder one that has shipped. Statements are separated by
``;`` (no ``;`` inside string literals).
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    ("0001_initial", """
CREATE TABLE studies (
    study_id TEXT PRIMARY KEY,
    trials_csv TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE batches (
    batch_id TEXT PRIMARY KEY,
    study_id TEXT NOT NULL REFERENCES studies(study_id),
    n_trials INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE trials (
    trial_id TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL REFERENCES batches(batch_id),
    position INTEGER NOT NULL,
    ref_id TEXT NOT NULL, ref_path TEXT NOT NULL,
    a_id TEXT NOT NULL, a_path TEXT NOT NULL,
    b_id TEXT NOT NULL, b_path TEXT NOT NULL,
    a_codec TEXT, b_codec TEXT, a_bpp TEXT, b_bpp TEXT, target_bpp TEXT,
    left_side TEXT NOT NULL CHECK (left_side IN ('a', 'b')),
    kind TEXT NOT NULL CHECK (kind IN ('test', 'sentinel')),
    expected TEXT CHECK (expected IN ('a', 'b', ''))
);
CREATE INDEX trials_batch ON trials(batch_id, position);
CREATE TABLE hits (
    hit_id TEXT PRIMARY KEY,
    hit_type_id TEXT,
    batch_id TEXT NOT NULL REFERENCES batches(batch_id),
    unique_request_token TEXT UNIQUE,
    status TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('sandbox', 'live', 'local')),
    reward TEXT,
    max_assignments INTEGER NOT NULL DEFAULT 1,
    question TEXT,
    url TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT
);
CREATE INDEX hits_batch ON hits(batch_id);
CREATE TABLE workers (
    worker_id TEXT PRIMARY KEY,
    first_seen TEXT NOT NULL,
    sentinel_correct INTEGER,
    sentinel_total INTEGER,
    sentinel_score REAL,
    blocked INTEGER NOT NULL DEFAULT 0,
    blocked_reason TEXT,
    blocked_at TEXT
);
CREATE TABLE assignments (
    assignment_id TEXT PRIMARY KEY,
    hit_id TEXT NOT NULL REFERENCES hits(hit_id),
    worker_id TEXT NOT NULL REFERENCES workers(worker_id),
    status TEXT NOT NULL
        CHECK (status IN ('accepted', 'submitted', 'approved', 'rejected', 'abandoned')),
    accepted_at TEXT,
    submitted_at TEXT,
    reviewed_at TEXT,
    feedback TEXT,
    simulated INTEGER NOT NULL DEFAULT 0,
    answers_sha TEXT
);
CREATE INDEX assignments_hit ON assignments(hit_id);
CREATE INDEX assignments_worker ON assignments(worker_id);
CREATE TABLE judgments (
    judgment_id INTEGER PRIMARY KEY,
    assignment_id TEXT NOT NULL REFERENCES assignments(assignment_id),
    trial_id TEXT NOT NULL REFERENCES trials(trial_id),
    choice TEXT NOT NULL CHECK (choice IN ('a', 'b')),
    shown_left TEXT NOT NULL CHECK (shown_left IN ('a', 'b')),
    rt_ms INTEGER,
    created_at TEXT NOT NULL,
    UNIQUE (assignment_id, trial_id)
);
CREATE TABLE qualification_types (
    name TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('sandbox', 'live', 'local')),
    qualification_type_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (name, mode)
);
CREATE TABLE bonuses (
    bonus_id INTEGER PRIMARY KEY,
    assignment_id TEXT NOT NULL REFERENCES assignments(assignment_id),
    worker_id TEXT NOT NULL,
    amount TEXT NOT NULL,
    reason TEXT NOT NULL,
    unique_token TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    paid_at TEXT
);
"""),
]
MIGRATIONS.append(("0002_verification_and_quality", """
CREATE TABLE study_keys (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at TEXT NOT NULL
);
ALTER TABLE trials ADD COLUMN repeat_of TEXT NOT NULL DEFAULT '';
ALTER TABLE assignments ADD COLUMN verified_at TEXT;
ALTER TABLE assignments ADD COLUMN verified_by TEXT;
ALTER TABLE hits ADD COLUMN assignment_duration_s INTEGER;
ALTER TABLE workers ADD COLUMN qc_flags TEXT
"""))
MIGRATIONS.append(("0003_ratings", """
CREATE TABLE ratings (
    rating_id INTEGER PRIMARY KEY,
    assignment_id TEXT NOT NULL REFERENCES assignments(assignment_id),
    trial_id TEXT NOT NULL REFERENCES trials(trial_id),
    design TEXT NOT NULL CHECK (design IN ('acr', 'dsis')),
    score INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
    rt_ms INTEGER,
    created_at TEXT NOT NULL,
    UNIQUE (assignment_id, trial_id)
);
CREATE INDEX ratings_trial ON ratings(trial_id)
"""))
# issue 30 (the requester's dashboard, mturk.dashboard): one row per requested action, written
# before the market is called and finished with its answer; plain types so that SQLite and
# PostgreSQL both accept it (see /work/notes/migrations.txt for the numbering between engineers)
MIGRATIONS.append(("0004_dashboard_audit", """
CREATE TABLE audit_actions (
    action_id TEXT PRIMARY KEY,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    worker_id TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    requested_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT NOT NULL,
    market_answer TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_actions_requested ON audit_actions(requested_at);
CREATE INDEX audit_actions_worker ON audit_actions(worker_id)
"""))


def migrate(version: int, where: str, run, set_version) -> None:
    """Run the migrations after ``version`` (how many a database has run), each statement
    through ``run(sql)``, then ``set_version(count)``: the one loop of both stores (SQLite's
    ``PRAGMA user_version``, PostgreSQL's ``plic_schema`` table); a database newer than this
    code raises ``DBError`` naming ``where``."""
    from .common import DBError

    if version > len(MIGRATIONS):
        raise DBError(f"{where}: schema version {version} is newer than this code "
                      f"({len(MIGRATIONS)} migrations)")
    for i, (_name, sql) in enumerate(MIGRATIONS[version:], start=version):
        for stmt in sql.split(";"):
            if stmt.strip():
                run(stmt)
        set_version(i + 1)

"""``python -m mturk.store.copy``: a study moved between SQLite and PostgreSQL keeps every row,
its ids and its secret; a non-empty target is refused and left as it was."""

from __future__ import annotations

import pandas as pd

from mturk.store.copy import main as copy_main
from mturk.store.copy import tables
from mturk.store.study_db import StudyDB

from .test_store_conformance import _answers, _trials


def _study(url):
    db = StudyDB(url)
    db.load_trials(_trials())
    db.add_hit("H1", "b0", "sandbox", max_assignments=3, reward="0.50")
    for i in range(2):
        db.accept_assignment(f"A{i}", "H1", f"W{i}")
        db.record_submission(f"A{i}", "H1", f"W{i}", _answers(db, "b0", "ab"[i]))
    db.verify_assignment("A0", "H1", "W0")
    db.add_bonus("A0", "W0", "0.25", "accuracy", "bonus-A0")
    db.claim_local_assignment("P1")
    return db


def test_sqlite_to_postgres_and_back(pg_cluster, tmp_path, capsys):
    src = _study(str(tmp_path / "j.sqlite"))
    url = pg_cluster.create_database()
    assert copy_main(["--from", str(src.path), "--to", url]) == 0
    dst = StudyDB(url)
    for t in tables():
        assert src._rows(f"SELECT * FROM {t} ORDER BY 1") == \
            dst._rows(f"SELECT * FROM {t} ORDER BY 1"), t
    assert dst.secret() == src.secret() and dst.keys().participant_token(1) == \
        src.keys().participant_token(1)
    pd.testing.assert_frame_equal(src.judgments_frame(), dst.judgments_frame())
    # the copy goes on where the source stopped: new ids after the copied ones
    dst.accept_assignment("A9", "H1", "W9")
    dst.record_submission("A9", "H1", "W9", _answers(dst, "b0"))
    ids = [j["judgment_id"] for j in dst.judgments()]
    assert len(ids) == len(set(ids)) == 9 and max(ids) == 9
    b = dst.add_bonus("A9", "W9", "0.10", "x", "bonus-A9")
    assert b["bonus_id"] == 2
    # and back into a fresh SQLite file
    back = tmp_path / "back.sqlite"
    assert copy_main(["--from", url, "--to", str(back)]) == 0
    pd.testing.assert_frame_equal(StudyDB(back).judgments_frame(), dst.judgments_frame())
    dst.dispose()


def test_non_empty_target_is_refused_and_untouched(pg_cluster, tmp_path, capsys):
    src = _study(str(tmp_path / "j.sqlite"))
    url = pg_cluster.create_database()
    other = StudyDB(url)
    other.load_trials(_trials(n_batches=1))
    before = other.counts()
    capsys.readouterr()
    assert copy_main(["--from", str(src.path), "--to", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not empty" in err
    assert other.counts() == before and other.secret() != src.secret()
    assert copy_main(["--from", str(tmp_path / "missing.sqlite"), "--to", url]) == 2
    assert "no such study database" in capsys.readouterr().err
    other.dispose()

"""A PostgreSQL server's databases through the store (mturk.store.pg_cluster): a server given by
URL (``ExternalPg``, the load benchmark's ``--pg-url``) gets the same database methods as the
throwaway cluster, so no caller writes SQL."""

from __future__ import annotations

import pytest

from mturk.store.pg_cluster import ExternalPg, database_url
from mturk.store.study_db import StudyDB


def test_database_url_keeps_user_host_and_options():
    assert database_url("postgresql://u@/postgres?host=/tmp/x", "s1") == \
        "postgresql://u@/s1?host=/tmp/x"
    assert database_url("postgresql://u:p@db:5432/postgres", "s1") == "postgresql://u:p@db:5432/s1"


def test_an_external_server_creates_databases_and_drops_connections(pg_cluster):
    ext = ExternalPg(pg_cluster.url())
    url = ext.create_database("ext_admin_test")
    assert url == pg_cluster.url("ext_admin_test")
    db = StudyDB(url)
    try:
        assert db.audit()["judgments"] == 0           # an empty study store on the new database
        assert ext.terminate_connections("ext_admin_test") >= 1   # the store's own connection
    finally:
        db.close()
    with pytest.raises(RuntimeError, match="throwaway cluster"):
        ext.restart()

"""Fixtures of the mturk tests: a throwaway PostgreSQL cluster (``mturk.store.pg_cluster``) for
the store's conformance tests and the served study, and ``store_url`` for either backend."""

from __future__ import annotations

import pytest

from mturk.store.pg_cluster import PgCluster, find_bin_dir


@pytest.fixture(scope="session")
def pg_cluster():
    """One cluster for the session (initdb takes seconds); each test gets its own database."""
    if find_bin_dir() is None:
        pytest.skip("PostgreSQL not installed (scripts/setup.sh installs Debian's postgresql)")
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        pytest.skip("psycopg/psycopg_pool not installed (pip install 'plic[serve]')")
    cluster = PgCluster(fsync=False).start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    """A fresh, empty study database of each backend: a SQLite path or a postgresql:// URL."""
    if request.param == "sqlite":
        return str(tmp_path / "judgments.sqlite")
    return request.getfixturevalue("pg_cluster").create_database()

"""A throwaway PostgreSQL server for tests and benchmarks: ``with PgCluster() as pg: pg.url()``.

``initdb`` and ``pg_ctl`` (Debian's ``postgresql`` package: ``/usr/lib/postgresql/*/bin``) make a
cluster in a fresh temporary folder, listening on a unix socket in that folder only (no TCP port),
with trust authentication for its one user. PostgreSQL refuses to run as root, so as root the
server runs as the unprivileged user ``nobody``. ``stop()`` (or leaving the ``with``) stops it and
removes the folder. ``restart()`` is a server restart (the fault benchmark). ``ExternalPg(url)``
gives a server that runs elsewhere the same database methods (``create_database``,
``terminate_connections``), so that callers never write SQL.

``find_bin_dir()`` is None on a machine without PostgreSQL: the tests skip with one line.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

USER = "plic"


def database_url(server_url: str, name: str) -> str:
    """The URL of database ``name`` on the server ``server_url`` reaches (same user, host and
    options)."""
    head, _, tail = server_url.partition("?")
    return head.rsplit("/", 1)[0] + "/" + name + ("?" + tail if tail else "")


def create_database(server_url: str, name: str) -> str:
    """A new empty database ``name`` on the server ``server_url`` reaches; returns its URL."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(server_url, name)


def terminate_connections(server_url: str, dbname: str) -> int:
    """Drop every connection to ``dbname`` but this one (the dropped-connection fault). Returns
    how many."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname=%s AND pid<>pg_backend_pid()", (dbname,)).fetchall()
    return len(rows)


class ExternalPg:
    """A PostgreSQL server given by URL (``benchmarks.study_server --pg-url``), with the database
    methods of ``PgCluster``; it is not this process's to restart or stop."""

    def __init__(self, url: str):
        self.base = url

    def url(self, dbname: str = "postgres") -> str:
        return database_url(self.base, dbname)

    def create_database(self, name: str) -> str:
        return create_database(self.base, name)

    def terminate_connections(self, dbname: str) -> int:
        return terminate_connections(self.base, dbname)

    def restart(self, mode: str = "fast") -> None:
        raise RuntimeError("a restart needs a throwaway cluster (PgCluster), not --pg-url")

    def stop(self) -> None:
        pass


def find_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<v>/bin`` with initdb and pg_ctl, else None."""
    env = os.environ.get("PLIC_PG_BIN")
    cands = [env] if env else sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                     key=lambda p: int(p.split("/")[-2]) if
                                     p.split("/")[-2].isdigit() else 0, reverse=True)
    for c in cands:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    return None


class PgCluster:
    """One throwaway cluster (see the module docstring)."""

    def __init__(self, bin_dir: Path | None = None, fsync: bool = True,
                 max_connections: int = 100):
        self.bin = bin_dir or find_bin_dir()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)")
        self.fsync = fsync
        self.max_connections = max_connections
        self.dir: Path | None = None
        self._n = 0

    # -- running as the server's user ---------------------------------------------------------
    def _cmd(self, *args: str) -> list[str]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            return ["runuser", "-u", "nobody", "--", *cmd]
        return cmd

    def _run(self, *args: str, timeout: float = 120) -> None:
        r = subprocess.run(self._cmd(*args), capture_output=True, text=True, timeout=timeout,
                           cwd=self.dir)
        if r.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {(r.stderr or r.stdout).strip()[-800:]}")

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.dir / "sock"

    def start(self) -> PgCluster:
        self.dir = Path(tempfile.mkdtemp(prefix="plic-pg-"))
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            for p in (self.dir, self.socket_dir):
                shutil.chown(p, "nobody", "nogroup")
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-instructions")
        fsync = "on" if self.fsync else "off"
        conf = (f"listen_addresses = ''\nunix_socket_directories = '{self.socket_dir}'\n"
                f"max_connections = {self.max_connections}\nfsync = {fsync}\n"
                "shared_buffers = 64MB\n")
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(conf)
        self.start_server()
        atexit.register(self.stop)       # a run interrupted before stop() leaves no server
        return self

    def start_server(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w",
                  "-t", "60", "start")

    def stop_server(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop_server(mode)
        self.start_server()

    def stop(self) -> None:
        if self.dir is None:
            return
        try:
            self.stop_server("immediate")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- databases ------------------------------------------------------------------------------
    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{USER}@/{dbname}?host={self.socket_dir}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        if name is None:
            self._n += 1
            name = f"study_{os.getpid()}_{self._n}_{int(time.time() * 1000) % 100000}"
        create_database(self.url(), name)
        return self.url(name)

    def terminate_connections(self, dbname: str) -> int:
        """Drop every connection to ``dbname`` (the dropped-connection fault). Returns how many."""
        return terminate_connections(self.url(), dbname)

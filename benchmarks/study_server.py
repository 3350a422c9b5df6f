"""Load benchmark of the study server on loopback: ``python -m benchmarks.study_server
[--server dev,gunicorn] [--store sqlite,postgres]``.

For each (server, store) configuration (default: dev/SQLite, gunicorn/SQLite and
gunicorn/PostgreSQL; ``--server`` and ``--store`` pick others) it starts ``python -m mturk.serve
--local`` as a subprocess on a synthetic study (``--workers N`` for gunicorn; a throwaway
PostgreSQL cluster, ``mturk.store.pg_cluster``, unless ``--pg-url`` names a server), then runs
simulated workers (claim a batch, fetch the task, submit answers: the page's three requests) at
increasing concurrency, each level for a bounded time. The load generator runs on the same
machine (its threads share the CPUs with the server).

At the fault level (``--fault-level``) a fault strikes halfway through (``--fault``): ``kill``
(default: the dev server is killed with SIGKILL and restarted on the same port and store; on
gunicorn one worker is killed with SIGKILL and gunicorn replaces it), ``restart-postgres``,
``drop-connections`` (every server connection to the study's database terminated), ``disk-full``
(SQLite on a small tmpfs, filled for a second; root only) or ``none``. Clients retry: a 503 after
its Retry-After (shortened to 50 ms here), a dropped connection at once (submissions are
idempotent). At the end every acknowledged submission must be in the store exactly once: same
assignments, ``judgments == sum of acknowledged answers``, no (assignment, trial) twice, the
store's integrity check ok (``StudyDB.audit``: the benchmark writes no SQL); any 500 or a
request that hung past the client's timeout fails the check.

Writes ``runs/bench/mturk.md`` and ``runs/bench/mturk.json``: one table, a row per
(configuration, level): submissions/s, the p50/p99 latency of the submit request and of a whole
worker (three requests), 503s answered, and the 1-minute load average of the machine (other jobs
included) when the level ended. ``--profile`` profiles the app in-process instead (cProfile of N
workers' three requests through the WSGI app, no network): where a submission's time goes.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

from mturk.design.trials import TrialsConfig, build
from mturk.sim.http_client import Client
from mturk.sim.toy_index import make_toy_index
from mturk.store.study_db import StudyDB
from plic.cli import CliError, command, parser
from plic.fsio import atomic_write_text
from plic.paths import runs_dir

SERVERS = ("dev", "gunicorn")
STORES = ("sqlite", "postgres")
FAULTS = ("kill", "restart-postgres", "drop-connections", "disk-full", "none")
DEFAULT_CONFIGS = (("dev", "sqlite"), ("gunicorn", "sqlite"), ("gunicorn", "postgres"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (gunicorn's workers)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


class Server:
    def __init__(self, trials: Path, db: str, port: int, log: Path, server: str = "dev",
                 workers: int = 2, threads: int = 1):
        self.args = [sys.executable, "-m", "mturk.serve", "--local", "--simulated", "--port",
                     str(port), "--trials", str(trials), "--db", str(db)]
        if server == "gunicorn":
            self.args += ["--workers", str(workers), "--threads", str(threads)]
        self.server = server
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc = None

    def start(self, timeout: float = 120.0) -> float:
        t0 = time.perf_counter()
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(self.args, stdout=f, stderr=subprocess.STDOUT)
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - t0
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not start; see {self.log}")

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def kill9_worker(self) -> int:
        workers = _children(self.proc.pid)
        if not workers:
            raise RuntimeError("no gunicorn worker to kill")
        os.kill(workers[0], signal.SIGKILL)
        return workers[0]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _call(client: Client, counts: dict, lock, method: str, path: str, body=None):
    """One request, sent again after a 503 (the store restarting: nothing was written)."""
    for _ in range(400):
        st, res = client.request(method, path, body)
        if st != 503:
            return st, res
        with lock:
            counts["503"] = counts.get("503", 0) + 1
        time.sleep(0.05)
    return st, res


def _worker_loop(url: str, deadline: float, tokens, acked: dict, lat: list, lock,
                 seed: int, counts: dict | None = None) -> None:
    counts = {} if counts is None else counts
    client = Client(url, retries=60, backoff=0.05)
    rng = np.random.default_rng(seed)
    while time.perf_counter() < deadline:
        with lock:
            token = next(tokens)        # a new participant per claim (the page's three requests)
        t0 = time.perf_counter()
        try:
            st, claim = _call(client, counts, lock, "POST", "/api/local/claim", {"token": token})
            if st != 200:
                raise _Failed(st)
            q = urlencode(dict(assignmentId=claim["assignment_id"], hitId=claim["hit_id"],
                               workerId=claim["worker_id"]))
            st, task = _call(client, counts, lock, "GET", f"/api/task?{q}")
            if st != 200:
                raise _Failed(st)
            answers = [dict(trial_id=t["trial_id"],
                            side="left" if rng.random() < 0.5 else "right", rt_ms=1000)
                       for t in task["trials"]]
            t1 = time.perf_counter()
            st, res = _call(client, counts, lock, "POST", "/api/submit",
                            dict(claim, answers=answers))
            t2 = time.perf_counter()
            if st != 200:
                raise _Failed(st)
        except _Failed as e:
            with lock:
                key = "500" if e.args[0] >= 500 else "other"
                counts[key] = counts.get(key, 0) + 1
                acked["_errors"] = acked.get("_errors", 0) + 1
            continue
        except OSError:                # no answer after every retry: a hang or an outage
            with lock:
                counts["no_answer"] = counts.get("no_answer", 0) + 1
                acked["_errors"] = acked.get("_errors", 0) + 1
            continue
        with lock:
            acked[claim["assignment_id"]] = len(answers)
            if res.get("status") == "duplicate":    # a retry of a write that had committed
                acked["_duplicates"] = acked.get("_duplicates", 0) + 1
            lat.append((t2 - t1, t2 - t0))


class _Failed(Exception):
    pass


class _Tmpfs:
    """A small tmpfs for SQLite (the disk-full fault; root only), unmounted afterwards."""

    def __init__(self, path: Path, size_mb: int = 48):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
                       check=True, capture_output=True)

    def fill(self) -> Path:
        filler = self.path / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 16))
                    f.flush()
            except OSError:
                pass
        return filler

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


def _fault(name: str, srv: Server, pg, pg_db: str | None, tmpfs) -> dict:
    t0 = time.perf_counter()
    out = dict(fault=name)
    if name == "kill":
        if srv.server == "gunicorn":
            out["killed_worker"] = srv.kill9_worker()
        else:
            srv.kill9()
            out["restart_s"] = srv.start()
    elif name == "restart-postgres":
        pg.restart(mode="fast")
    elif name == "drop-connections":
        out["dropped"] = pg.terminate_connections(pg_db)
    elif name == "disk-full":
        filler = tmpfs.fill()
        time.sleep(1.0)
        filler.unlink()
    out["downtime_s"] = time.perf_counter() - t0
    return out


def _run_one(server: str, store: str, trials: Path, tmp: Path, levels, seconds: float,
             fault_level: int, fault: str, workers: int, threads: int, pg, tokens_from: int):

    name = f"{server}-{store}"
    tmpfs = None
    pg_db = None
    if store == "postgres":
        pg_db = name.replace("-", "_") + f"_{os.getpid()}"
        db = pg.create_database(pg_db)
    elif fault == "disk-full":
        tmpfs = _Tmpfs(tmp / f"{name}-tmpfs")
        db = str(tmpfs.path / "judgments.sqlite")
    else:
        db = str(tmp / f"{name}.sqlite")
    srv = Server(trials, db, _free_port(), tmp / f"{name}.log", server, workers, threads)
    srv.start()
    store_db = StudyDB(db)
    keys = store_db.keys()          # the operator mints the participants' links
    store_db.dispose()
    tokens = (keys.participant_token(i) for i in itertools.count(tokens_from))
    acked: dict = {}
    counts: dict = {}
    lock = threading.Lock()
    results, faulted = [], None
    try:
        for c in levels:
            lat: list = []
            n0 = len([k for k in acked if not k.startswith("_")])
            c0 = dict(counts)
            t0 = time.perf_counter()
            deadline = t0 + seconds
            threads_ = [threading.Thread(target=_worker_loop,
                                         args=(srv.url, deadline, tokens, acked, lat,
                                               lock, 1000 * c + k, counts)) for k in range(c)]
            for t in threads_:
                t.start()
            if c == fault_level and fault != "none":
                time.sleep(seconds / 2)
                faulted = dict(_fault(fault, srv, pg, pg_db, tmpfs), concurrency=c)
            for t in threads_:
                t.join()
            wall = time.perf_counter() - t0
            n = len([k for k in acked if not k.startswith("_")]) - n0
            sub = np.array([x[0] for x in lat]) * 1e3
            tot = np.array([x[1] for x in lat]) * 1e3
            results.append(dict(
                server=server, store=store, workers=workers if server == "gunicorn" else 0,
                concurrency=c, seconds=wall, submissions=n, submissions_per_s=n / wall,
                submit_p50_ms=float(np.percentile(sub, 50)) if n else None,
                submit_p99_ms=float(np.percentile(sub, 99)) if n else None,
                worker_p50_ms=float(np.percentile(tot, 50)) if n else None,
                worker_p99_ms=float(np.percentile(tot, 99)) if n else None,
                answered_503=counts.get("503", 0) - c0.get("503", 0),
                errors=sum(counts.get(k, 0) - c0.get(k, 0) for k in ("500", "other",
                                                                      "no_answer")),
                fault=fault if (c == fault_level and fault != "none") else "",
                load_avg_1min=os.getloadavg()[0], killed=c == fault_level and fault == "kill"))
    finally:
        srv.stop()
        store_db = StudyDB(db)
        audit = store_db.audit()
        store_db.dispose()
        if tmpfs is not None:
            tmpfs.close()
    sub_db, dups, integrity, n_judg = (audit[k] for k in ("per_assignment", "duplicates",
                                                          "integrity", "judgments"))
    ok_acked = {k: v for k, v in acked.items() if not k.startswith("_")}
    check = dict(
        acknowledged_submissions=len(ok_acked), db_submissions=len(sub_db),
        acknowledged_judgments=sum(ok_acked.values()), db_judgments=n_judg,
        lost=len(set(ok_acked) - set(sub_db)),
        unacknowledged_in_db=len(set(sub_db) - set(ok_acked)),
        wrong_counts=sum(sub_db.get(k) != v for k, v in ok_acked.items()),
        duplicate_judgments=dups, integrity=integrity, http_errors=acked.get("_errors", 0),
        answered_500=counts.get("500", 0), no_answer=counts.get("no_answer", 0),
        answered_503=counts.get("503", 0), retried_duplicates=acked.get("_duplicates", 0))
    check["ok"] = (check["lost"] == 0 and check["wrong_counts"] == 0 and dups == 0
                   and integrity == "ok" and check["answered_500"] == 0
                   and check["no_answer"] == 0
                   and n_judg - sum(sub_db.get(k, 0) for k in set(sub_db) - set(ok_acked))
                   == check["acknowledged_judgments"])
    return dict(server=server, store=store, levels=results, fault=faulted, count_check=check)


def run(levels=(1, 2, 4, 8, 16), seconds: float = 4.0, kill_level: int = 8,
        out_dir: Path | None = None, workdir: Path | None = None,
        configs=(("dev", "sqlite"),), workers: int = 2, threads: int = 4,
        fault: str = "kill", pg_url: str | None = None) -> dict:
    """Run each (server, store) of ``configs`` (see the module docstring); ``kill_level`` is the
    concurrency level at which ``fault`` strikes (0: none)."""
    tmp = Path(workdir or tempfile.mkdtemp(prefix="plic-mturk-bench-"))
    index = make_toy_index(tmp / "dist", n_refs=6, size=32, qualities=(5, 15, 30, 50, 70, 90))
    trials, _ = build(index, tmp / "study", TrialsConfig(batch_size=20))
    pg = None
    if any(st == "postgres" for _, st in configs):
        from mturk.store.pg_cluster import ExternalPg, PgCluster

        pg = ExternalPg(pg_url) if pg_url else PgCluster(fsync=True).start()
    runs = []
    try:
        for k, (server, store) in enumerate(configs):
            print(f"benchmarks.study_server: {server}/{store} ...", file=sys.stderr, flush=True)
            runs.append(_run_one(server, store, trials, tmp, levels, seconds, kill_level,
                                 fault if kill_level else "none", workers, threads, pg,
                                 1 + 1_000_00 * k))
    finally:
        if pg is not None:
            pg.stop()
    report = dict(benchmark="mturk study server on loopback (load generator on the same machine)",
                  simulated=True, cpu_count=os.cpu_count(), trials_per_submission=20,
                  workers=workers, threads=threads, seconds_per_level=seconds, runs=runs,
                  load_avg_start=None, ok=all(r["count_check"]["ok"] for r in runs))
    if len(runs) == 1:                 # one configuration: its fields at the top, as before
        report.update(levels=runs[0]["levels"], kill=runs[0]["fault"],
                      count_check=runs[0]["count_check"])
    out = Path(out_dir or runs_dir() / "bench")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "mturk.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "mturk.md", _markdown(report))
    if workdir is None:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def _markdown(r: dict) -> str:
    def f(v, d=1):
        return "-" if v is None else f"{v:.{d}f}"

    lines = ["# mturk server load benchmark (simulated crowd, loopback)", "",
             f"`python -m benchmarks.study_server`; {r['cpu_count']} CPUs shared by the server(s), "
             "the load generator and every other job on the machine (load average: the machine's "
             "1-minute load when the level ended); each submission = 20 judgments; a worker = "
             f"claim + task + submit; gunicorn: {r['workers']} workers x {r['threads']} "
             "threads.", "",
             "| server | store | concurrency | submissions | submissions/s | submit p50 ms "
             "| submit p99 ms | worker p50 ms | worker p99 ms | 503s | errors | fault "
             "| load avg |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in r["runs"]:
        for x in run["levels"]:
            lines.append(
                f"| {x['server']} | {x['store']} | {x['concurrency']} | {x['submissions']} | "
                f"{f(x['submissions_per_s'])} | {f(x['submit_p50_ms'])} | "
                f"{f(x['submit_p99_ms'])} | {f(x['worker_p50_ms'])} | "
                f"{f(x['worker_p99_ms'])} | {x['answered_503']} | {x['errors']} | "
                f"{x['fault'] + (' (kill -9)' if x['fault'] == 'kill' else '')} | "
                f"{f(x['load_avg_1min'])} |")
    lines.append("")
    for run in r["runs"]:
        lines += [f"{run['server']}/{run['store']}: fault {json.dumps(run['fault'])}; count "
                  f"check {json.dumps(run['count_check'])}", ""]
    return "\n".join(lines)


def profile(n: int = 200, store: str = "sqlite", out_dir: Path | None = None,
            top: int = 25) -> str:
    """cProfile of ``n`` workers' three requests through the WSGI app in this process (no
    network, no server): where the time of a page and a submission goes."""
    import cProfile
    import io
    import pstats

    from mturk.web.app import AppConfig, create_app

    tmp = Path(tempfile.mkdtemp(prefix="plic-mturk-profile-"))
    index = make_toy_index(tmp / "dist", n_refs=6, size=32, qualities=(5, 15, 30, 50, 70, 90))
    trials, _ = build(index, tmp / "study", TrialsConfig(batch_size=20))
    pg = None
    if store == "postgres":
        from mturk.store.pg_cluster import PgCluster

        pg = PgCluster(fsync=True).start()
        db = pg.create_database("profile")
    else:
        db = str(tmp / "judgments.sqlite")
    try:
        app = create_app(AppConfig(trials=str(trials), db=db, local=True, simulated=True))
        c = app.test_client()
        keys = app.extensions["plic_db"].keys()

        def one(i):
            claim = c.post("/api/local/claim", json={"token": keys.participant_token(i)})
            claim = claim.get_json()
            q = urlencode(dict(assignmentId=claim["assignment_id"], hitId=claim["hit_id"],
                               workerId=claim["worker_id"]))
            task = c.get(f"/api/task?{q}").get_json()
            r = c.post("/api/submit", json=dict(claim, answers=[
                dict(trial_id=t["trial_id"], side="left", rt_ms=1000) for t in task["trials"]]))
            assert r.status_code == 200, r.get_json()

        one(1)
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        for i in range(2, n + 2):
            one(i)
        prof.disable()
        wall = time.perf_counter() - t0
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(top)
        app.extensions["plic_db"].dispose()
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    text = (f"# mturk app profile: {n} workers (claim + task + submit) in-process, store {store}\n"
            f"# {wall:.2f} s wall = {1e3 * wall / n:.2f} ms per worker in one thread, "
            f"load average {os.getloadavg()[0]:.1f}\n\n" + buf.getvalue())
    out = Path(out_dir or runs_dir() / "bench")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"mturk_profile_{store}.txt", text)
    return text


PROG = "python -m benchmarks.study_server"


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("--server", default="",
                   help="dev, gunicorn or both (comma-separated); with --store, every pair "
                        "(default: dev/sqlite, gunicorn/sqlite, gunicorn/postgres)")
    p.add_argument("--store", default="", help="sqlite, postgres or both (comma-separated)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers (%(default)s)")
    p.add_argument("--threads", type=int, default=4,
                   help="threads per gunicorn worker (%(default)s; >1: gthread, keep-alive)")
    p.add_argument("--levels", default="1,2,4,8,16", help="concurrency levels (%(default)s)")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds per level (%(default)s)")
    p.add_argument("--kill-level", "--fault-level", dest="kill_level", type=int, default=8,
                   help="the fault strikes during this level (%(default)s; 0 = none)")
    p.add_argument("--fault", default="kill", choices=FAULTS,
                   help="what strikes at the fault level (%(default)s)")
    p.add_argument("--pg-url", default="",
                   help="a PostgreSQL server to use (default: a throwaway cluster)")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="instead: profile N workers' requests in-process (--store picks the "
                        "store)")
    p.add_argument("--out", default=str(runs_dir() / "bench"), help="output folder")
    args = p.parse_args(argv)
    try:
        levels = tuple(int(x) for x in args.levels.split(","))
        servers = [x for x in args.server.split(",") if x]
        stores = [x for x in args.store.split(",") if x]
        bad = [x for x in servers if x not in SERVERS] + [x for x in stores if x not in STORES]
        if bad or min(levels) < 1 or args.workers < 1 or args.threads < 1:
            raise ValueError(f"unknown server/store {bad}" if bad else
                             "levels, --workers and --threads must be >= 1")
        if args.fault == "disk-full" and os.geteuid() != 0:
            raise ValueError("--fault disk-full mounts a tmpfs: run as root")
    except ValueError as e:
        raise CliError(e) from None
    if args.profile:
        print(profile(args.profile, (stores or ["sqlite"])[0], Path(args.out)))
        return 0
    if servers or stores:
        configs = [(sv, st) for sv in (servers or ["gunicorn"]) for st in (stores or ["sqlite"])]
    else:
        configs = list(DEFAULT_CONFIGS)
    r = run(levels, args.seconds, args.kill_level, Path(args.out), configs=configs,
            workers=args.workers, threads=args.threads, fault=args.fault,
            pg_url=args.pg_url or None)
    print(_markdown(r))
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Load benchmark of the study server on loopback: ``python -m mturk.bench``.

Starts ``python -m mturk.serve --local`` as a subprocess on a synthetic study, then runs simulated
workers (claim a batch, fetch the task, submit answers: the page's three requests) at increasing
concurrency, each level for a bounded time. At the kill level the server is killed with SIGKILL
halfway through and restarted on the same port and database; clients retry (submissions are
idempotent). At the end every acknowledged submission must be in the database exactly once:
same assignments, ``judgments == sum of acknowledged answers``, no (assignment, trial) twice,
the file's integrity check ok (``StudyDB.audit``: the benchmark writes no SQL).

Writes ``runs/bench/mturk.md`` and ``runs/bench/mturk.json``: per level, submissions/s and the
p50/p99 latency of the submit request and of a whole worker (three requests).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
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

from plic.fsio import atomic_write_text
from plic.paths import runs_dir

from .design.trials import TrialsConfig, build
from .sim.http_client import Client
from .sim.toy_index import make_toy_index
from .store.study_db import StudyDB


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, trials: Path, db: Path, port: int, log: Path):
        self.args = [sys.executable, "-m", "mturk.serve", "--local", "--simulated", "--port",
                     str(port), "--trials", str(trials), "--db", str(db)]
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc = None

    def start(self, timeout: float = 60.0) -> float:
        t0 = time.perf_counter()
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(self.args, stdout=f, stderr=subprocess.STDOUT)
        while time.perf_counter() - t0 < timeout:
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

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def _worker_loop(url: str, deadline: float, tokens, acked: dict, lat: list, lock,
                 seed: int) -> None:
    client = Client(url, retries=60, backoff=0.05)
    rng = np.random.default_rng(seed)
    while time.perf_counter() < deadline:
        with lock:
            token = next(tokens)        # a new participant per claim (the page's three requests)
        t0 = time.perf_counter()
        st, claim = client.request("POST", "/api/local/claim", {"token": token})
        if st != 200:
            continue
        q = urlencode(dict(assignmentId=claim["assignment_id"], hitId=claim["hit_id"],
                           workerId=claim["worker_id"]))
        st, task = client.request("GET", f"/api/task?{q}")
        if st != 200:
            continue
        answers = [dict(trial_id=t["trial_id"], side="left" if rng.random() < 0.5 else "right",
                        rt_ms=1000) for t in task["trials"]]
        t1 = time.perf_counter()
        st, res = client.request("POST", "/api/submit", dict(claim, answers=answers))
        t2 = time.perf_counter()
        with lock:
            if st == 200:
                acked[claim["assignment_id"]] = len(answers)
                if res.get("status") == "duplicate":    # a retry of a write that had committed
                    acked["_duplicates"] = acked.get("_duplicates", 0) + 1
                lat.append((t2 - t1, t2 - t0))
            else:
                acked.setdefault("_errors", 0)
                acked["_errors"] += 1


def run(levels=(1, 2, 4, 8, 16), seconds: float = 4.0, kill_level: int = 8,
        out_dir: Path | None = None, workdir: Path | None = None) -> dict:
    tmp = Path(workdir or tempfile.mkdtemp(prefix="plic-mturk-bench-"))
    index = make_toy_index(tmp / "dist", n_refs=6, size=32, qualities=(5, 15, 30, 50, 70, 90))
    trials, _ = build(index, tmp / "study", TrialsConfig(batch_size=20))
    db = tmp / "study" / "judgments.sqlite"
    srv = Server(trials, db, _free_port(), tmp / "server.log")
    srv.start()
    keys = StudyDB(db).keys()          # the operator mints the participants' links
    tokens = (keys.participant_token(i) for i in itertools.count(1))
    acked: dict = {}
    lock = threading.Lock()
    results, kill = [], None
    try:
        for c in levels:
            lat: list = []
            n0 = len([k for k in acked if not k.startswith("_")])
            t0 = time.perf_counter()
            deadline = t0 + seconds
            threads = [threading.Thread(target=_worker_loop,
                                        args=(srv.url, deadline, tokens, acked, lat,
                                              lock, 1000 * c + k)) for k in range(c)]
            for t in threads:
                t.start()
            if c == kill_level:
                time.sleep(seconds / 2)
                t_kill = time.perf_counter()
                srv.kill9()
                restart_s = srv.start()
                kill = dict(concurrency=c, restart_s=restart_s,
                            downtime_s=time.perf_counter() - t_kill)
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            n = len([k for k in acked if not k.startswith("_")]) - n0
            sub = np.array([x[0] for x in lat]) * 1e3
            tot = np.array([x[1] for x in lat]) * 1e3
            results.append(dict(
                concurrency=c, seconds=wall, submissions=n, submissions_per_s=n / wall,
                submit_p50_ms=float(np.percentile(sub, 50)) if n else None,
                submit_p99_ms=float(np.percentile(sub, 99)) if n else None,
                worker_p50_ms=float(np.percentile(tot, 50)) if n else None,
                worker_p99_ms=float(np.percentile(tot, 99)) if n else None,
                killed=c == kill_level))
    finally:
        srv.stop()
    audit = StudyDB(db).audit()
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
        retried_duplicates=acked.get("_duplicates", 0))
    check["ok"] = (check["lost"] == 0 and check["wrong_counts"] == 0 and dups == 0
                   and integrity == "ok" and n_judg == check["acknowledged_judgments"])
    report = dict(benchmark="mturk study server (werkzeug threaded, SQLite WAL) on loopback",
                  simulated=True, cpu_count=os.cpu_count(), trials_per_submission=20,
                  levels=results, kill=kill, count_check=check)
    out = Path(out_dir or runs_dir() / "bench")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "mturk.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "mturk.md", _markdown(report))
    return report


def _markdown(r: dict) -> str:
    def f(v, d=1):
        return "-" if v is None else f"{v:.{d}f}"

    lines = ["# mturk server load benchmark (simulated crowd, loopback)", "",
             f"`python -m mturk.bench`; {r['cpu_count']} CPUs; each submission = 20 judgments; "
             "a worker = claim + task + submit.", "",
             "| concurrency | s | submissions | submissions/s | submit p50 ms | submit p99 ms "
             "| worker p50 ms | worker p99 ms | kill -9 |", "|---|---|---|---|---|---|---|---|---|"]
    for x in r["levels"]:
        lines.append(f"| {x['concurrency']} | {f(x['seconds'])} | {x['submissions']} | "
                     f"{f(x['submissions_per_s'])} | {f(x['submit_p50_ms'])} | "
                     f"{f(x['submit_p99_ms'])} | {f(x['worker_p50_ms'])} | "
                     f"{f(x['worker_p99_ms'])} | {'yes' if x['killed'] else ''} |")
    k, c = r["kill"], r["count_check"]
    lines += ["", f"Kill: {json.dumps(k)}", "", "Count check: " + json.dumps(c), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mturk.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--levels", default="1,2,4,8,16", help="concurrency levels (%(default)s)")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds per level (%(default)s)")
    p.add_argument("--kill-level", type=int, default=8,
                   help="kill -9 and restart the server during this level (%(default)s; 0 = no)")
    p.add_argument("--out", default=str(runs_dir() / "bench"), help="output folder")
    args = p.parse_args(argv)
    levels = tuple(int(x) for x in args.levels.split(","))
    r = run(levels, args.seconds, args.kill_level, Path(args.out))
    print(_markdown(r))
    return 0 if r["count_check"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Page times of the requester's dashboard on a big study: ``python -m benchmarks.dashboard_pages``.

Makes (once; kept in ``--study``, default ``runs/bench/dashboard_study``) a SIMULATED 2AFC study
of ``--workers`` workers x ``--assignments`` assignments of about 10 trials (``mturk.dashboard.
study_maker``: 1,000 x 11, over 100,000 judgments by default), then renders every page through
the app (Flask's test client: the whole request, SQL to HTML, no network) ``--repeats`` times,
as the command serves them: from the latest snapshot of the figures, which a background thread
recomputes when the database changes (``mturk.dashboard.app.Figures``); that recomputation is
timed too. Writes ``runs/bench/dashboard.md`` and ``.json``; the target is every page under
300 ms.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

from plic.cli import CliError, command, parser
from plic.fsio import atomic_write_text
from plic.paths import runs_dir

TARGET_MS = 300.0
SECRET = "bench-secret-not-used-elsewhere"


def _login(client) -> None:
    page = client.get("/login").text
    tok = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post("/login", data=dict(secret=SECRET, name="bench", csrf_token=tok))
    assert r.status_code == 302, r.status_code


PROG = "python -m benchmarks.dashboard_pages"


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("--workers", type=int, default=1000, help="simulated workers (%(default)s)")
    p.add_argument("--assignments", type=int, default=11,
                   help="assignments of 10 trials per worker (%(default)s)")
    p.add_argument("--repeats", type=int, default=5, help="renders per page (%(default)s)")
    p.add_argument("--study", default=str(runs_dir() / "bench" / "dashboard_study"),
                   help="folder of the benchmark's study (made once, then reused)")
    p.add_argument("--out", default=str(runs_dir() / "bench"), help="report folder")
    args = p.parse_args(argv)
    if args.workers < 2 or args.assignments < 1 or args.repeats < 1:
        raise CliError("--workers >= 2, --assignments and --repeats >= 1")
    from mturk.dashboard.app import DashboardConfig, create_dashboard
    from mturk.dashboard.study_maker import make_study
    from mturk.market.memory import InMemoryMarket

    study = Path(args.study) / f"w{args.workers}-a{args.assignments}"
    db_path = study / "study" / "judgments.sqlite"
    if not (study / "done").is_file():
        import shutil

        shutil.rmtree(study, ignore_errors=True)
        t0 = time.perf_counter()
        print(f"making the study: {args.workers} workers x {args.assignments} assignments",
              flush=True)
        make_study(study, workers=args.workers, assignments_per_worker=args.assignments,
                   n_refs=8, size=32, approve_share=0.5,
                   progress=lambda i, n: print(f"  {i}/{n} workers", flush=True))
        (study / "done").write_text("ok\n")
        print(f"  made in {time.perf_counter() - t0:.0f} s", flush=True)
    from mturk.store.study_db import StudyDB

    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    db = StudyDB(db_path)
    counts = db.dash_counts()
    worker = db.list_workers()[0]["worker_id"]
    pages = {"login": "/login", "overview": "/", "workers": "/workers",
             "workers sorted+filtered": "/workers?sort=side_p&dir=desc&filter=flagged",
             "worker": f"/workers/{worker}", "results": "/results", "live json": "/api/live.json"}
    app = create_dashboard(DashboardConfig(db=str(db_path), secret=SECRET, poll_s=3600),
                           InMemoryMarket(), background=True)
    figs = app.extensions["plic_dashboard"]["figures"]
    refresh = []
    for _ in range(args.repeats):                # what a change costs, off the request path
        t0 = time.perf_counter()
        figs._compute(db.dash_change_stamp())
        refresh.append((time.perf_counter() - t0) * 1000)
    print(f"figures recomputed after a change: median {np.median(refresh):.0f} ms "
          f"(max {np.max(refresh):.0f} ms), in the background thread", flush=True)
    figs.refresh()
    client = app.test_client()
    _login(client)
    results = {}
    for name, url in pages.items():
        times = []
        client.get(url)                           # compiles the page's template once
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            r = client.get(url)
            times.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                print(f"benchmarks.dashboard_pages: error: {url} answered {r.status_code}",
                      file=sys.stderr)
                return 1
        results[name] = dict(url=url, ms=times, median_ms=float(np.median(times)),
                             max_ms=float(np.max(times)))
        print(f"{name:24s} median {np.median(times):7.1f} ms  max {np.max(times):7.1f} ms",
              flush=True)
    page_max = max(v["max_ms"] for v in results.values())
    meta = dict(judgments=counts["judgments"], workers=counts["workers"],
                assignments=sum(counts["assignments"].values()), repeats=args.repeats,
                machine=platform.platform(), cpus=os.cpu_count(), load=load0,
                target_ms=TARGET_MS, page_max_ms=page_max, met=page_max < TARGET_MS,
                refresh_ms=refresh, refresh_median_ms=float(np.median(refresh)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "dashboard.json", json.dumps(dict(meta=meta, pages=results),
                                                         indent=2) + "\n")
    lines = [f"# mturk.dashboard page times ({meta['judgments']} judgments, {meta['workers']} "
             f"workers, {meta['assignments']} assignments; SIMULATED study)", "",
             f"`python -m benchmarks.dashboard_pages` on {meta['machine']}, {meta['cpus']} CPUs, "
             f"1-min load {meta['load']:.1f} at the start; {args.repeats} renders per page "
             "through Flask's test client (the whole request: session, SQL, template), after one "
             "render that compiles the template.", "",
             "| page | median ms | max ms |", "| --- | ---: | ---: |"]
    for name, v in results.items():
        lines.append(f"| {name} | {v['median_ms']:.1f} | {v['max_ms']:.1f} |")
    lines += ["", f"Target: every page under {TARGET_MS:.0f} ms: "
              + ("met" if meta["met"] else f"NOT met (slowest {page_max:.0f} ms)") + ".", "",
              "Pages render the latest snapshot of the figures; the snapshot is recomputed "
              "by a background thread when the database changes (all figures, from "
              f"`mturk.store.dashboard_queries`' SQL aggregates): median "
              f"{meta['refresh_median_ms']:.0f} ms, max {max(refresh):.0f} ms here, so a new "
              "answer shows on the pages that much (plus the poll interval) later."]
    atomic_write_text(out / "dashboard.md", "\n".join(lines) + "\n")
    print(f"slowest page {page_max:.0f} ms (target {TARGET_MS:.0f}); {out}/dashboard.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

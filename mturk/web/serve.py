"""Serve the study: ``python -m mturk.serve [--local] [--port P] [--db DB] [--trials CSV]
[--workers N]``.

Binds 127.0.0.1 by default. ``--db`` is a SQLite file (default) or a PostgreSQL URL
(``postgresql://USER@HOST/DB``, ``mturk.store.pg_store``).

Two servers run the same Flask app (``mturk.web.app``: same routes, headers and signed URLs):

- ``--workers 0`` (default): werkzeug's threaded development server, one process; for a lab
  study and for debugging.
- ``--workers N``: gunicorn (``pip install 'plic[serve]'``) with N worker processes (``--threads
  T`` threads each; T > 1 uses gunicorn's gthread workers). The study is loaded and its store
  migrated once before the workers start; each worker then opens its own connections (a SQLite
  connection per thread, or a PostgreSQL pool per process). Every worker takes the tokens and
  image URLs any other issued: the keys come from the store (``StudyDB.secret``), never from a
  worker's memory. A worker that dies (``kill -9``) is replaced by gunicorn; the store keeps
  every submission it acknowledged. Static assets carry ``ETag`` and ``Last-Modified`` (a
  revalidation gets 304). ``--local`` runs a lab study with no MTurk: ``--participants N``
writes N participant links (``/local/start?p=TOKEN``, one per line, to ``--participants-file``,
default beside the database); each link is one participant, who gets their next batch on each
visit, and their answers go straight into the database. There is no link without a token.
``--simulated`` flags every answer this server takes as coming from a simulated crowd
(``mturk.sim.crowd``): the flag comes from here, never from a request.

For MTurk the page must be reachable over HTTPS (MTurk shows it in an iframe on an https page).
Keep this server on loopback and put TLS in front of it, for example:

- a reverse proxy: ``caddy reverse-proxy --from study.example.org --to 127.0.0.1:8000``
  (automatic certificates), or nginx with ``proxy_pass http://127.0.0.1:8000`` and
  ``proxy_set_header X-Forwarded-Proto https``;
- a tunnel: ``cloudflared tunnel --url http://127.0.0.1:8000`` gives an https URL.

Pass ``--behind-proxy`` so the app trusts one proxy's ``X-Forwarded-*`` headers. The
ExternalQuestion URL is then ``https://HOST/task`` (``/hit`` is an alias; extra query
parameters such as ``batch_id`` are ignored: the HIT id names the batch); MTurk appends
``assignmentId``, ``hitId``, ``workerId`` and ``turkSubmitTo``.
The app's CSP allows framing by MTurk's worker sites only.
"""

from __future__ import annotations

import sys
from pathlib import Path

from werkzeug.serving import WSGIRequestHandler, make_server

from plic.cli import command, parser, report
from plic.fsio import atomic_write_text
from plic.paths import runs_dir

from ..store.common import StoreUnavailableError
from ..store.study_db import is_url
from .app import AppConfig, create_app


def build_app(cfg: AppConfig, behind_proxy: bool = False):
    """The study app of ``cfg``, trusting one reverse proxy's ``X-Forwarded-*`` headers when
    ``behind_proxy``."""
    app = create_app(cfg)
    if behind_proxy:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
    return app


def run_gunicorn(cfg: AppConfig, host: str, port: int, workers: int, threads: int = 1, *,
                 behind_proxy: bool = False, log_requests: bool = False,
                 on_ready=None, timeout_s: int = 30) -> None:
    """Serve ``cfg``'s app on gunicorn with ``workers`` processes until stopped (SIGTERM/SIGINT).
    Each worker builds the app after the fork (no connection crosses a fork). ``on_ready(port)``
    runs in the master once it listens."""
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError as e:
        raise ValueError("--workers needs gunicorn: pip install 'plic[serve]'") from e

    settings = dict(bind=f"{host}:{port}", workers=workers, threads=threads,
                    worker_class="gthread" if threads > 1 else "sync", timeout=timeout_s,
                    graceful_timeout=10, keepalive=5, proc_name="plic-study", loglevel="warning",
                    errorlog="-", accesslog="-" if log_requests else None,
                    worker_tmp_dir="/dev/shm" if Path("/dev/shm").is_dir() else None)

    def when_ready(server):
        if on_ready is not None:
            on_ready(server.LISTENERS[0].sock.getsockname()[1])

    class StudyServer(BaseApplication):
        def load_config(self):
            for k, v in settings.items():
                if v is not None:
                    self.cfg.set(k, v)
            self.cfg.set("when_ready", when_ready)

        def load(self):
            return build_app(cfg, behind_proxy)

    StudyServer().run()


class NoDelayHandler(WSGIRequestHandler):
    """werkzeug's handler with Nagle's algorithm off: a response's header and body segments go
    out at once instead of waiting for the client's delayed ACK (40 ms per request)."""

    disable_nagle_algorithm = True


def make_study_server(host: str, port: int, app):
    """werkzeug's threaded server for the study app (``server.serve_forever()``)."""
    return make_server(host, port, app, threaded=True, request_handler=NoDelayHandler)


PROG = "python -m mturk.serve"


@command(PROG, errors=(StoreUnavailableError, OSError))
def main(argv: list[str] | None = None) -> int:
    p = parser(PROG, __doc__)
    p.add_argument("--local", action="store_true",
                   help="lab study without MTurk: participant link, answers into the database")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s; 0 = any)")
    p.add_argument("--db", default=str(runs_dir() / "study" / "judgments.sqlite"),
                   help="SQLite file or postgresql://USER@HOST/DB (default: %(default)s)")
    p.add_argument("--trials", default=str(runs_dir() / "study" / "trials.csv"),
                   help="trials.csv (default: %(default)s)")
    p.add_argument("--participants", type=int, default=0,
                   help="local: write this many participant links (default: %(default)s)")
    p.add_argument("--participants-file", default="",
                   help="local: where the links go (default: participants.txt beside --db)")
    p.add_argument("--simulated", action="store_true",
                   help="flag every submission as coming from a simulated crowd")
    p.add_argument("--image-ttl-s", type=int, default=AppConfig.image_ttl_s,
                   help="seconds a page's image URLs stay valid (default: %(default)s)")
    p.add_argument("--max-per-batch", type=int, default=0,
                   help="local: at most this many participants per batch (0 = no limit)")
    p.add_argument("--behind-proxy", action="store_true",
                   help="trust X-Forwarded-* headers from one reverse proxy")
    p.add_argument("--workers", type=int, default=0,
                   help="gunicorn with this many worker processes (default: %(default)s = "
                        "werkzeug's development server)")
    p.add_argument("--threads", type=int, default=4,
                   help="gunicorn: threads per worker (default: %(default)s; >1: gthread "
                        "workers, which keep connections alive; 1: sync workers)")
    p.add_argument("--db-timeout-s", type=float, default=AppConfig.db_timeout_s,
                   help="seconds a request waits for the store before a 503 (default: "
                        "%(default)s)")
    p.add_argument("--log-requests", action="store_true", help="log every request")
    args = p.parse_args(argv)
    if not args.log_requests:
        import logging

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        if not 0 <= args.participants < 1_000_000 or args.image_ttl_s <= 0:
            raise ValueError("--participants must be in 0..999999 and --image-ttl-s > 0")
        if args.participants and not args.local:
            raise ValueError("--participants is for a --local (lab) study")
        if args.participants and is_url(args.db) and not args.participants_file:
            raise ValueError("with a postgresql:// --db, say where the links go: "
                             "--participants-file")
        if not 0 <= args.workers <= 64 or not 1 <= args.threads <= 64:
            raise ValueError("--workers must be in 0..64 and --threads in 1..64")
        if args.db_timeout_s <= 0:
            raise ValueError("--db-timeout-s must be > 0")
        cfg = AppConfig(trials=args.trials, db=args.db, local=args.local,
                        simulated=args.simulated, image_ttl_s=args.image_ttl_s,
                        max_per_batch=args.max_per_batch, db_timeout_s=args.db_timeout_s)
        # load the study once here: a bad trials.csv, a missing image or an unreachable store
        # is one line now, and the workers find the store migrated and the secret made
        app = build_app(cfg, args.behind_proxy)
        db = app.extensions["plic_db"]
        server = None if args.workers else make_study_server(args.host, args.port, app)
    except (OSError, ValueError, StoreUnavailableError) as e:
        return report(e, PROG)
    tag = " SIMULATED crowd" if args.simulated else ""
    shown_db = _shown(args.db)

    def ready(port: int) -> None:
        base = f"http://{args.host}:{port}"
        if args.participants:
            path = Path(args.participants_file or Path(args.db).with_name("participants.txt"))
            keys = db.keys()
            links = [f"{base}/local/start?p={keys.participant_token(i)}"
                     for i in range(1, args.participants + 1)]
            atomic_write_text(path, "\n".join(links) + "\n")
            print(f"participant links: {len(links)} in {path}", flush=True)
        elif args.local:
            print("no participant links written: pass --participants N", flush=True)
        how = f" (gunicorn, {args.workers} workers x {args.threads} threads)" if args.workers \
            else ""
        print(f"mturk.serve: listening on {base} (db {shown_db}){tag}{how}", flush=True)

    if args.workers:
        # the secret is made (LoadedStudy asked for the keys): the workers build their own app
        # and open their own connections after the fork, so close this process's now
        db.dispose()
        try:
            run_gunicorn(cfg, args.host, args.port, args.workers, args.threads,
                         behind_proxy=args.behind_proxy, log_requests=args.log_requests,
                         on_ready=ready)
        except ValueError as e:
            return report(e, PROG)
        return 0
    ready(server.server_port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _shown(db: str) -> str:
    """``--db`` as printed: a URL's password hidden."""
    import re

    return re.sub(r"//([^:@/]*):[^@/]*@", r"//\1:***@", db)


if __name__ == "__main__":
    sys.exit(main())

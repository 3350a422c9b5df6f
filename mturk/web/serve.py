"""Serve the study: ``python -m mturk.serve [--local] [--port P] [--db PATH] [--trials CSV]``.

Binds 127.0.0.1 by default. ``--local`` runs a lab study with no MTurk: ``--participants N``
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

import argparse
import sys
from pathlib import Path

from werkzeug.serving import WSGIRequestHandler, make_server

from plic.fsio import atomic_write_text
from plic.paths import runs_dir

from .app import AppConfig, create_app


class NoDelayHandler(WSGIRequestHandler):
    """werkzeug's handler with Nagle's algorithm off: a response's header and body segments go
    out at once instead of waiting for the client's delayed ACK (40 ms per request)."""

    disable_nagle_algorithm = True


def make_study_server(host: str, port: int, app):
    """werkzeug's threaded server for the study app (``server.serve_forever()``)."""
    return make_server(host, port, app, threaded=True, request_handler=NoDelayHandler)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mturk.serve", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--local", action="store_true",
                   help="lab study without MTurk: participant link, answers into the database")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s; 0 = any)")
    p.add_argument("--db", default=str(runs_dir() / "study" / "judgments.sqlite"),
                   help="SQLite database (default: %(default)s)")
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
        app = create_app(AppConfig(trials=args.trials, db=args.db, local=args.local,
                                   simulated=args.simulated, image_ttl_s=args.image_ttl_s,
                                   max_per_batch=args.max_per_batch))
        if args.behind_proxy:
            from werkzeug.middleware.proxy_fix import ProxyFix

            app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
        server = make_study_server(args.host, args.port, app)
    except (OSError, ValueError) as e:
        print(f"mturk.serve: error: {e}", file=sys.stderr)
        return 2
    port = server.server_port
    base = f"http://{args.host}:{port}"
    tag = " SIMULATED crowd" if args.simulated else ""
    if args.participants:
        path = Path(args.participants_file or Path(args.db).with_name("participants.txt"))
        keys = app.extensions["plic_db"].keys()
        links = [f"{base}/local/start?p={keys.participant_token(i)}"
                 for i in range(1, args.participants + 1)]
        atomic_write_text(path, "\n".join(links) + "\n")
        print(f"participant links: {len(links)} in {path}", flush=True)
    elif args.local:
        print("no participant links written: pass --participants N", flush=True)
    print(f"mturk.serve: listening on {base} (db {args.db}){tag}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Serve the study: ``python -m mturk.serve [--local] [--port P] [--db PATH] [--trials CSV]``.

Binds 127.0.0.1 by default. ``--local`` runs a lab study with no MTurk: open the printed
participant link (``/local/start``); each visit gets the next batch, answers go straight into the
database.

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

from werkzeug.serving import make_server

from codec.paths import runs_dir

from .app import AppConfig, create_app


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
        app = create_app(AppConfig(trials=args.trials, db=args.db, local=args.local,
                                   max_per_batch=args.max_per_batch))
    except (OSError, ValueError) as e:
        print(f"mturk.serve: error: {e}", file=sys.stderr)
        return 2
    if args.behind_proxy:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
    server = make_server(args.host, args.port, app, threaded=True)
    port = server.server_port
    base = f"http://{args.host}:{port}"
    print(f"mturk.serve: listening on {base} (db {args.db})", flush=True)
    if args.local:
        print(f"participant link: {base}/local/start", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

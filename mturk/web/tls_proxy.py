"""HTTPS in front of the study server: an nginx configuration (Debian's ``nginx-light`` or
``nginx``) that terminates TLS and passes requests to ``python -m mturk.serve --workers N
--behind-proxy`` on loopback.

MTurk shows the page in an iframe on an https site, so the page must be https too. Run the study
server on loopback only and let nginx face the crowd::

    python -m mturk.serve --workers 4 --behind-proxy --port 8000 --db postgresql://...
    # /etc/nginx/sites-enabled/plic-study: nginx_site(...) for your host name and certificate
    # (e.g. Let's Encrypt's certbot --nginx), then: nginx -t && systemctl reload nginx

``--behind-proxy`` makes the app trust exactly one proxy's ``X-Forwarded-For``,
``X-Forwarded-Proto`` and ``X-Forwarded-Host`` (werkzeug's ``ProxyFix``): redirects and the
scheme the app sees are https. Without it those headers are ignored (anyone could send them).

``nginx_site`` writes the ``server`` block; ``nginx_conf`` a whole configuration that runs in the
foreground from a folder (the loopback test in ``tests/mturk/test_serve_tls_proxy.py`` uses it
with a self-signed certificate: ``self_signed_cert``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def nginx_site(listen: str, upstream: str, cert: str | Path, key: str | Path,
               server_name: str = "_", max_body: str = "1m") -> str:
    """The ``server`` block: TLS on ``listen`` (``443`` or ``127.0.0.1:8443``), everything
    passed to ``upstream`` (``127.0.0.1:8000``) with the forwarded headers ProxyFix reads."""
    return f"""server {{
    listen {listen} ssl;
    server_name {server_name};
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    client_max_body_size {max_body};
    location / {{
        proxy_pass http://{upstream};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto https;
        proxy_set_header X-Forwarded-Host $host:$server_port;
        proxy_read_timeout 60s;
    }}
}}
"""


def nginx_conf(prefix: Path, listen: str, upstream: str, cert: str | Path,
               key: str | Path) -> Path:
    """A whole nginx configuration in ``prefix`` that runs in the foreground (``nginx -p PREFIX
    -c nginx.conf``), logs and temporary files inside ``prefix``; returns its path."""
    prefix = Path(prefix)
    for d in ("logs", "tmp"):
        (prefix / d).mkdir(parents=True, exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(f"    {k}_temp_path {prefix / 'tmp' / k};\n"
                   for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    text = (f"{user}daemon off;\nworker_processes 1;\npid {prefix / 'nginx.pid'};\n"
            f"error_log {prefix / 'logs' / 'error.log'} warn;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"    access_log {prefix / 'logs' / 'access.log'};\n{temp}"
            + "".join("    " + line + "\n" for line in
                      nginx_site(listen, upstream, cert, key).splitlines())
            + "}\n")
    path = prefix / "nginx.conf"
    path.write_text(text)
    return path


def self_signed_cert(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throwaway self-signed certificate and key for ``host`` (openssl); (cert, key)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    san = f"IP:{host}" if host.replace(".", "").isdigit() else f"DNS:{host}"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={host}", "-addext", f"subjectAltName={san}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key

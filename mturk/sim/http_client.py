"""The simulated crowd's and the load test's HTTP client: one keep-alive connection to the study
server with retries (submissions are idempotent, so a retry never doubles one)."""

from __future__ import annotations

import http.client
import json
import socket
import time
from urllib.parse import urlsplit


class Client:
    """One keep-alive HTTP connection with retries (submissions are idempotent, so retry)."""

    def __init__(self, url: str, timeout: float = 10.0, retries: int = 20, backoff: float = 0.2):
        u = urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.conn = None

    def request(self, method: str, path: str, body=None) -> tuple[int, dict]:
        status, raw = self.fetch(method, path, body)
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            payload = {"raw": raw[:200].decode("latin-1")}
        return status, payload

    def fetch(self, method: str, path: str, body=None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in range(self.retries + 1):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port,
                                                           timeout=self.timeout)
                if self.conn.sock is None:       # new, or closed by the server (Connection:
                    self.conn.connect()          # close): header and body go out at once
                    self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == self.retries:
                    raise
                time.sleep(self.backoff * min(2 ** attempt, 10))
        raise AssertionError("unreachable")

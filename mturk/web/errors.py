"""The study server's errors: HTTP statuses come from the error's type (``STATUS``), never from
its text, and every error a route answers is JSON ``{"error": ...}`` (``fail``)."""

from __future__ import annotations

from flask import jsonify

from ..store.study_db import (
    ConflictError,
    DBError,
    HitFullError,
    StoreUnavailableError,
    UnknownIdError,
)
from .page import AnswerError


class BlockedError(DBError):
    """A blocked worker: nothing of theirs is taken."""


#: HTTP status per error type (the most specific class wins).
STATUS = {AnswerError: 400, DBError: 400, UnknownIdError: 404, ConflictError: 409,
          HitFullError: 409, BlockedError: 403, StoreUnavailableError: 503}

#: seconds a client waits before sending a request again after a 503 (the store restarting)
RETRY_AFTER_S = 1


def status_of(exc: Exception) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def fail(exc_or_code, msg: str | None = None, **extra):
    """A JSON error response: the status of ``exc_or_code`` (an error or a status), its text
    (or ``msg``) and ``extra`` fields."""
    code = exc_or_code if isinstance(exc_or_code, int) else status_of(exc_or_code)
    resp = jsonify(error=msg if msg is not None else str(exc_or_code), **extra)
    if code == 503:
        resp.headers["Retry-After"] = str(RETRY_AFTER_S)
    return resp, code

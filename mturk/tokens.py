"""Keyed names for everything a worker's browser sees: trial ids, image URLs, participant links.

Nothing on a HIT page may tell a sentinel from a test trial, or say which image is which. So the
page never carries a trial id, an image id or a file name; it carries names made with HMAC-SHA256
under the study's secret (``StudyDB.secret()``, 32 random bytes kept in the database), each with
its own domain prefix so that no name can stand in for another:

- **page trial ids** (``page_trial_id``): per *scope* and trial. The scope is the assignment id on
  the study server's page (so two workers, or one worker in two HITs, never see the same id), and
  ``html:<batch>`` for an HTMLQuestion, whose HTML is fixed before MTurk issues assignments. The
  server maps ids back by recomputing them for the batch (``page_ids``).
- **page order** (``page_order``): the batch's trials sorted by a keyed hash of (scope, trial), so
  each assignment sees its own order and a shared answer key by position is worthless.
- **image URLs** (``image_path`` / ``check_image``): ``/img/<batch>/<scope>/<expiry>/<k>-<mac>.png``
  where ``k = 3 * position + view`` (view 0 reference, 1 left, 2 right) in the scope's page order.
  Every (trial, view) of every assignment has its own URL, so equal URLs never reveal that a
  sentinel shows the reference; the MAC makes URLs unguessable, the expiry (unix seconds, inside
  the MAC) makes them stop working (``AppConfig.image_ttl_s``).
- **static image names** (``static_name``): for images uploaded to a public host (HTMLQuestion and
  the qualification quiz): one name per (use, batch or quiz, trial, view), never shared.
- **participant tokens** (``participant_token`` / ``participant_of``): a lab study's links.
  ``P0001-<mac>``: stateless, so the server and ``mturk.sim.crowd``'s operator agree without a
  table, and the same link always means the same participant.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

VIEWS = ("ref", "left", "right")
_MAC_HEX = 24                      # 96 bits: unguessable, short enough for 64 KB HTMLQuestions
PARTICIPANT_RE = re.compile(r"^(P\d{4,6})-([0-9a-f]{24})$")
IMAGE_RE = re.compile(r"^(\d{1,5})-([0-9a-f]{24})\.png$")


class Keys:
    """HMAC names under one study secret (``bytes``, at least 16 of them)."""

    def __init__(self, secret: bytes):
        if not isinstance(secret, bytes) or len(secret) < 16:
            raise ValueError("a study secret is at least 16 bytes")
        self._secret = secret

    def mac(self, *parts: str, n: int = _MAC_HEX) -> str:
        msg = "\x1f".join(parts).encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:n]

    # -- what one page shows ----------------------------------------------------------------
    def page_trial_id(self, scope: str, trial_id: str) -> str:
        return self.mac("trial", scope, trial_id, n=16)

    def page_ids(self, scope: str, trial_ids: Sequence[str]) -> dict[str, str]:
        """``{page trial id: trial id}`` for a batch shown in ``scope``."""
        return {self.page_trial_id(scope, t): t for t in trial_ids}

    def page_order(self, scope: str, trials: Sequence[dict]) -> list[dict]:
        """The batch's trials (dicts with ``trial_id``) in the order ``scope`` sees them."""
        return sorted(trials, key=lambda t: self.mac("order", scope, t["trial_id"]))

    # -- image URLs of the study server -------------------------------------------------------
    def image_path(self, batch_id: str, scope: str, k: int, expires: int) -> str:
        mac = self.mac("img", batch_id, scope, str(expires), str(k))
        return f"/img/{batch_id}/{scope}/{expires}/{k}-{mac}.png"

    def check_image(self, batch_id: str, scope: str, expires: str, name: str,
                    now: float) -> int | None:
        """The view index ``k`` of a served image name, or None (bad MAC, expired, malformed)."""
        m = IMAGE_RE.match(name)
        if not m or not expires.isdigit() or int(expires) < now:
            return None
        want = self.mac("img", batch_id, scope, expires, m.group(1))
        return int(m.group(1)) if hmac.compare_digest(want, m.group(2)) else None

    # -- images on a public host --------------------------------------------------------------
    def static_name(self, use: str, group: str, trial_id: str, view: str) -> str:
        """``<mac>.png`` for an uploaded image (``use``: ``html`` or ``quiz``)."""
        return self.mac("static", use, group, trial_id, view, n=32) + ".png"

    # -- lab participants ---------------------------------------------------------------------
    def participant_token(self, number: int) -> str:
        if not 0 < number < 1_000_000:
            raise ValueError("participant numbers run from 1 to 999999")
        pid = f"P{number:04d}"
        return f"{pid}-{self.mac('participant', pid)}"

    def participant_of(self, token: str) -> str | None:
        """The participant (worker) id a token names, or None when it is not one of ours."""
        m = PARTICIPANT_RE.match(token or "")
        if not m:
            return None
        return m.group(1) if hmac.compare_digest(self.mac("participant", m.group(1)),
                                                 m.group(2)) else None


def html_scope(batch_id: str) -> str:
    """The scope of an HTMLQuestion's page ids and order (one HTML per batch)."""
    return f"html:{batch_id}"

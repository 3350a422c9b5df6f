"""Retry with exponential backoff and full jitter, for throttling and transient failures."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .base import TransientMarketError

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class Backoff:
    """How often and how long to wait before giving up on a transient error."""

    max_attempts: int = 6  # total tries, the first included
    base_s: float = 0.5  # the first wait is up to this long; each later one doubles
    cap_s: float = 20.0  # no single wait is longer
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random | None = None

    def delay(self, attempt: int) -> float:
        """Wait before try ``attempt + 1`` (attempt counts from 1): full jitter in [0, bound]."""
        bound = min(self.cap_s, self.base_s * (2 ** (attempt - 1)))
        return (self.rng or random).uniform(0, bound)

    def call(self, fn: Callable[[], T], what: str = "call") -> T:
        for attempt in range(1, self.max_attempts + 1):
            try:
                return fn()
            except TransientMarketError as e:
                if attempt == self.max_attempts:
                    raise
                wait = self.delay(attempt)
                log.warning("%s: %s (%s); retry %d/%d in %.1fs", what, e.code or "transient",
                            e, attempt, self.max_attempts - 1, wait)
                self.sleep(wait)
        raise AssertionError("unreachable")

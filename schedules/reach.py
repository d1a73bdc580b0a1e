"""Whether Redis answers, asked just before a herd's second.

An armed call (schedules/firing.py) is granted up to a second before it is made. If Redis went
away in between, the call's reply could not be noted or settled, its lease would run out during
the outage and the operation would be called again once Redis is back: a second vendor call for
one window. So just before the second each batch asks whether Redis still answers, and leaves
its calls to their lease when it does not (they are then made once, after the outage).

One PING per process serves every batch due within ``fresh_s`` of it; a batch waits for the
answer at most ``wait_s`` (a Redis that does not answer at all would otherwise hold the calls
for the client's socket timeout).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["FRESH_S", "WAIT_S", "ReachCheck"]

log = logging.getLogger(__name__)

#: An answer this recent (seconds) serves every batch that asks.
FRESH_S = 0.25
#: Longest wait for an answer before the calls are left to their lease.
WAIT_S = 0.5


class ReachCheck:
    """At most one PING in flight; its answer shared for ``fresh_s`` seconds."""

    def __init__(
        self,
        fresh_s: float = FRESH_S,
        wait_s: float = WAIT_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fresh_s = fresh_s
        self.wait_s = wait_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._answered_at: float | None = None
        self._answer = False
        self._pending: threading.Event | None = None

    def reachable(self, ping: Callable[[], Any]) -> bool:
        """True when ``ping`` answered (now or within ``fresh_s``); False when it raised or did
        not answer within ``wait_s``."""
        with self._lock:
            now = self._monotonic()
            if self._answered_at is not None and now - self._answered_at < self.fresh_s:
                return self._answer
            if self._pending is None:
                self._pending = threading.Event()
                threading.Thread(
                    target=self._ping, args=(ping, self._pending), name="reach-check", daemon=True
                ).start()
            pending = self._pending
        if not pending.wait(self.wait_s):
            return False
        with self._lock:
            return self._answer

    def _ping(self, ping: Callable[[], Any], done: threading.Event) -> None:
        try:
            ping()
            answer = True
        except Exception as exc:
            log.debug("Redis did not answer a PING: %s", type(exc).__name__)
            answer = False
        with self._lock:
            self._answer = answer
            self._answered_at = self._monotonic()
            self._pending = None
        done.set()

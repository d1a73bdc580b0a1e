"""The Redis QueryGate: every query attempt of this process takes a slot of the global budget.

Priorities: the time poll asks with ``reserve=0``; room look-ups and overdue checks ask with
``reserve=1``, so they never take the last free slot of a window: that one is the poll's.

The client calls ``before_query`` before each attempt and ``after_query`` when it has ended, so
the limiter knows when each call finished: a slot frees at "finished + window" instead of
"admitted + window + a generous margin".
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import redis

from worker.anyrtc.client import AnyRTCClient
from worker.discovery.limiter import SlidingWindowLimiter
from worker.errors import BudgetExhausted

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = ["LOOKUP_RESERVE", "RedisQueryGate", "gated_client"]

log = logging.getLogger(__name__)

#: Slots per window that low-priority callers (room look-ups, overdue checks) leave to the poll.
LOOKUP_RESERVE = 1


class RedisQueryGate:
    """A :class:`worker.anyrtc.gate.QueryGate` backed by :class:`SlidingWindowLimiter`."""

    def __init__(self, limiter: SlidingWindowLimiter, *, reserve: int = 0) -> None:
        self.limiter = limiter
        self.reserve = reserve
        self._local = threading.local()

    def before_query(self, app_id: str, endpoint: str) -> None:
        """Take a slot or raise BudgetExhausted with the seconds until one frees."""
        self.after_query(app_id, endpoint)  # a slot left open by an interrupted attempt
        decision = self.limiter.acquire(app_id, reserve=self.reserve)
        if not decision.admitted:
            raise BudgetExhausted(decision.wait_s, app_id)
        self._local.pending = (app_id, decision.token)

    def after_query(self, app_id: str = "", endpoint: str = "") -> None:
        """The attempt this thread was admitted for has ended (any outcome)."""
        pending = getattr(self._local, "pending", None)
        if pending is None:
            return
        self._local.pending = None
        try:
            self.limiter.complete(*pending)
        except redis.RedisError:
            # The slot then frees at its grace deadline instead: later, never earlier.
            log.warning("could not mark a query call finished; its slot frees late")

    def on_rate_limited(self, app_id: str, endpoint: str) -> None:
        """The vendor answered 299: close the budget for a whole window."""
        self.after_query(app_id, endpoint)
        window = self.limiter.close(app_id)
        log.warning("vendor answered 299 on %s; budget closed for %.1fs", endpoint, window)


def gated_client(
    settings: Settings, limiter: SlidingWindowLimiter, *, reserve: int = 0
) -> AnyRTCClient:
    """An :class:`AnyRTCClient` whose query calls all go through the global budget."""
    return AnyRTCClient.from_settings(settings, query_gate=RedisQueryGate(limiter, reserve=reserve))

"""The Redis QueryGate: every query attempt of this process takes a slot of the global budget.

Priorities: the time poll asks with ``reserve=0``; room look-ups and overdue checks ask with
``reserve=1``, so they never take the last free slot of a window: that one is the poll's.

The client calls ``before_query`` before each attempt but has no hook after it, so the gate
installs :class:`CompletingSession` as the client's HTTP session: it tells the limiter when each
attempt finished, which is what lets a slot free at "finished + window" instead of "admitted +
window + a generous margin".
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import redis
import requests
from requests.adapters import HTTPAdapter

from worker.anyrtc.client import AnyRTCClient
from worker.discovery.limiter import SlidingWindowLimiter
from worker.errors import BudgetExhausted

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = ["LOOKUP_RESERVE", "CompletingSession", "RedisQueryGate", "gated_client"]

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
        self.after_query()  # an attempt that never reached the wire still counts as finished
        decision = self.limiter.acquire(app_id, reserve=self.reserve)
        if not decision.admitted:
            raise BudgetExhausted(decision.wait_s, app_id)
        self._local.pending = (app_id, decision.token)

    def after_query(self) -> None:
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
        self.after_query()
        window = self.limiter.close(app_id)
        log.warning("vendor answered 299 on %s; budget closed for %.1fs", endpoint, window)


class CompletingSession(requests.Session):
    """A requests session that tells the gate when each request has ended."""

    def __init__(self, gate: RedisQueryGate) -> None:
        super().__init__()
        self.gate = gate
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=64, max_retries=0)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        try:
            response = super().request(*args, **kwargs)
            response.content  # noqa: B018 - read the body so "finished" means finished
            return response
        finally:
            self.gate.after_query()


def gated_client(
    settings: Settings, limiter: SlidingWindowLimiter, *, reserve: int = 0
) -> AnyRTCClient:
    """An :class:`AnyRTCClient` whose query calls all go through the global budget."""
    gate = RedisQueryGate(limiter, reserve=reserve)
    client = AnyRTCClient.from_settings(settings, query_gate=gate)
    client.session.close()
    client.session = CompletingSession(gate)
    return client

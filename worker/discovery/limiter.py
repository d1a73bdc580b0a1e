"""The global query budget: one Lua sliding log per app id, and the gate every query passes.

Rule: at most ``QUERY_RATE_LIMIT`` calls in any ``QUERY_RATE_PERIOD_S + QUERY_RATE_MARGIN_S``
seconds. A call counts from its admission while in flight and from the moment it finished once
done (an upper bound of when the vendor saw it), so the margin only has to absorb clock
differences with the vendor, not our own send latency.

Clock: the limiter alone reads Redis server time (``TIME`` inside ``sliding_window.lua``), not
the injected clock the rest of discovery runs on. The budget is shared by every process on every
machine that queries for the app id; on one clock for all of them, a host whose clock runs ahead
or behind cannot see slots as free early and overspend the vendor's window (the vendor answers
299 and closes the budget for everyone). Everything else discovery schedules only delays its own
work when a clock is off, so it may use the host's.

Priorities (:class:`RedisQueryGate`): the time poll asks with ``reserve=0``; room look-ups and
overdue checks ask with ``reserve=1``, so they never take the last free slot of a window: that
one is the poll's. The vendor client calls ``before_query`` before each attempt and
``after_query`` when it has ended, so a slot frees at "finished + window" instead of
"admitted + window + a generous margin".
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

from worker.anyrtc.client import AnyRTCClient
from worker.discovery.keys import DiscoveryKeys
from worker.errors import BudgetExhausted
from worker.metrics.recorder import Metrics
from worker.redis import scripts_for

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = [
    "LOOKUP_RESERVE",
    "Decision",
    "RedisQueryGate",
    "SlidingWindowLimiter",
    "gated_client",
]

log = logging.getLogger(__name__)

#: Slots per window that low-priority callers (room look-ups, overdue checks) leave to the poll.
LOOKUP_RESERVE = 1

# An in-flight call whose process died is forgotten this long after its window: more than any
# HTTP attempt can last (two timeouts: connect + read), so a live call is never forgotten early.
_GRACE_FACTOR = 2.0
_GRACE_EXTRA_S = 1.0


@dataclass(frozen=True)
class Decision:
    """What the limiter answered: admitted now, or how long until a slot frees."""

    admitted: bool
    wait_s: float
    taken: int
    token: str


class SlidingWindowLimiter:
    """``limit`` calls per ``period_s + margin_s`` seconds per app id, atomically in Redis."""

    def __init__(
        self,
        client: redis.Redis,
        keys: DiscoveryKeys,
        *,
        limit: int,
        period_s: float,
        margin_s: float = 0.0,
        grace_s: float = 10.0,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        if period_s <= 0 or margin_s < 0 or grace_s < 0:
            raise ValueError("period_s must be > 0, margin_s and grace_s >= 0")
        self.client = client
        self.keys = keys
        self.limit = limit
        self.period_s = period_s
        self.margin_s = margin_s
        self.window_ms = math.ceil((period_s + margin_s) * 1000)
        self.grace_ms = math.ceil(grace_s * 1000)
        self._script = scripts_for(client, "worker.discovery.lua").sliding_window

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis) -> SlidingWindowLimiter:
        """The limiter configured by ``QUERY_RATE_*`` and the HTTP timeout."""
        return cls(
            client,
            DiscoveryKeys(settings.redis_key_prefix),
            limit=settings.query_rate_limit,
            period_s=settings.query_rate_period_s,
            margin_s=settings.query_rate_margin_s,
            grace_s=_GRACE_FACTOR * settings.anyrtc_http_timeout_s + _GRACE_EXTRA_S,
        )

    @property
    def window_s(self) -> float:
        """The effective window: the vendor's period plus our margin."""
        return self.window_ms / 1000

    def effective_reserve(self, reserve: int) -> int:
        """``reserve`` clamped so that a low-priority caller can still get one slot."""
        return max(0, min(reserve, self.limit - 1))

    def acquire(self, app_id: str, *, reserve: int = 0) -> Decision:
        """Take a slot now, or learn how long until one frees (nothing is taken then).

        ``reserve`` slots of every window stay free for higher-priority callers.
        """
        token = uuid.uuid4().hex
        admitted, wait_ms, taken = self._run("acquire", app_id, token, reserve)
        return Decision(bool(admitted), int(wait_ms) / 1000, int(taken), token)

    def complete(self, app_id: str, token: str) -> None:
        """The call admitted with ``token`` has finished (answered, failed or timed out)."""
        self._run("complete", app_id, token, 0)

    def close(self, app_id: str) -> float:
        """The vendor said 299: admit nothing for a whole window. Returns the window in s."""
        self._run("close", app_id, uuid.uuid4().hex, 0)
        return self.window_s

    def _run(self, mode: str, app_id: str, token: str, reserve: int) -> list[int]:
        result = self._script(
            keys=[self.keys.budget(app_id)],
            args=[
                mode,
                self.limit,
                self.window_ms,
                self.effective_reserve(reserve),
                token,
                self.grace_ms,
            ],
        )
        return [int(v) for v in result]


class RedisQueryGate:
    """A :class:`worker.anyrtc.gate.QueryGate` backed by :class:`SlidingWindowLimiter`."""

    def __init__(self, limiter: SlidingWindowLimiter, *, reserve: int = 0) -> None:
        self.limiter = limiter
        self.reserve = reserve
        self._local = threading.local()
        self.metrics = Metrics(limiter.client, limiter.keys.prefix)

    def before_query(self, app_id: str, endpoint: str) -> None:
        """Take a slot or raise BudgetExhausted with the seconds until one frees."""
        self.after_query(app_id, endpoint)  # a slot left open by an interrupted attempt
        decision = self.limiter.acquire(app_id, reserve=self.reserve)
        self.metrics.query_wait(0.0 if decision.admitted else decision.wait_s)
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

    def on_answer(self, endpoint: str, outcome: str, code: str) -> None:
        """Count the query in ``anyrtc_vendor_calls_total``."""
        self.metrics.vendor_call(endpoint, outcome, code)


def gated_client(
    settings: Settings, limiter: SlidingWindowLimiter, *, reserve: int = 0
) -> AnyRTCClient:
    """An :class:`AnyRTCClient` whose query calls all go through the global budget."""
    return AnyRTCClient.from_settings(settings, query_gate=RedisQueryGate(limiter, reserve=reserve))

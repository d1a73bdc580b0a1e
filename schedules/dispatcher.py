"""The dispatcher: claims due actions (one Lua call) and hands each to a publisher.

It keeps no state of its own, so any number of dispatchers may run (one per worker process):
the claim script leases each action to exactly one of them.

Timing: the loop wakes at the earliest of one ``interval_s``, the next due time minus
``ahead_s`` and the next lease end, so it never polls blindly and never oversleeps an action.
With ``ahead_s`` > 0 an action is claimed up to ``ahead_s`` before it is due and published with
that due time (a Celery eta of at most ``ahead_s``): at the top of the hour the messages of a
herd are already in the workers when the second comes, instead of being published after it.
Nothing calls the vendor early: the task waits for the due time and the action script refuses
to apply an action before it (``early``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from schedules.store import LifecycleStore

__all__ = ["Dispatcher", "Publisher", "TickResult"]

log = logging.getLogger(__name__)

# publish([(action_id, due_at), ...], now) -> how many could not be published
Publisher = Callable[[list[tuple[str, float]], float], int]

# Wake slightly after a due time or lease end: the claim compares with <=, and waking a hair
# early would only cost an empty tick.
_WAKE_SLACK_S = 0.002


@dataclass(frozen=True)
class TickResult:
    """One tick: actions issued (new and re-issued), not published, and when to look again."""

    issued: int
    reissued: int
    failed: int
    next_due: float | None
    next_lease: float | None


class Dispatcher:
    """Claim due actions and publish one task per action.

    ``publish(pairs, now)`` must enqueue one task per ``(action_id, due_at)`` (to run at
    ``due_at`` when that is ahead of ``now``) and return how many it could not publish. An
    action that was not published stays leased and is issued again when its lease ends: nothing
    is lost, and nothing is doubled, because the task itself is guarded.
    """

    def __init__(
        self,
        store: LifecycleStore,
        publish: Publisher,
        *,
        lease_s: float,
        clock: Callable[[], float] = time.time,
        batch: int = 200,
        interval_s: float = 1.0,
        ahead_s: float = 0.0,
    ) -> None:
        self.store = store
        self.publish = publish
        self.lease_s = lease_s
        self.clock = clock
        self.batch = batch
        self.interval_s = interval_s
        self.ahead_s = ahead_s

    def tick(self) -> TickResult:
        """Claim and publish until nothing more is claimable (batches keep each claim short)."""
        issued = reissued = failed = 0
        while True:
            now = self.clock()
            claim = self.store.claim_due(
                now=now, lease_s=self.lease_s, limit=self.batch, ahead_s=self.ahead_s
            )
            reissued += claim.reissued
            if claim.due:
                try:
                    lost = self.publish(claim.due, now)
                except Exception:
                    log.exception("publishing %d action(s) failed", len(claim.due))
                    lost = len(claim.due)
                if lost:
                    log.warning("%d action(s) not published; issued again after the lease", lost)
                failed += lost
                issued += len(claim.due) - lost
            if len(claim.due) < self.batch:
                return TickResult(issued, reissued, failed, claim.next_due, claim.next_lease)

    def sleep_s(self, result: TickResult) -> float:
        """How long to wait before the next tick."""
        wake = [self.interval_s]
        now = self.clock()
        if result.next_due is not None:
            wake.append(result.next_due - self.ahead_s - now + _WAKE_SLACK_S)
        if result.next_lease is not None:
            wake.append(result.next_lease - now + _WAKE_SLACK_S)
        return max(min(wake), 0.0)

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set; errors are logged and retried. Losing Redis is one
        warning and its return one line, not a traceback per tick."""
        lost_at: float | None = None
        while not stop.is_set():
            try:
                result = self.tick()
                if result.issued or result.failed:
                    log.info(
                        "dispatcher issued %d action(s) (%d after a lease ran out, %d failed)",
                        result.issued,
                        result.reissued,
                        result.failed,
                    )
                wait = self.sleep_s(result)
                if lost_at is not None:
                    log.warning("dispatcher: Redis is back after %.1fs", time.time() - lost_at)
                    lost_at = None
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if lost_at is None:
                    lost_at = time.time()
                    log.warning(
                        "dispatcher lost Redis (%s: %s); retrying every %.1fs",
                        type(exc).__name__,
                        exc,
                        self.interval_s,
                    )
                wait = self.interval_s
            except Exception:
                log.exception("dispatcher tick failed; trying again in %.1fs", self.interval_s)
                wait = self.interval_s
            stop.wait(wait)

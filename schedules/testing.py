"""Drive the lifecycle in one process under a controlled clock (tests, demos, benchmarks).

The same dispatcher and the same ``perform`` the worker runs, minus Celery: each tick's claimed
actions are performed right away, in this process. Only "now" is fake; Redis and the vendor
(simulator) are real.
"""

from __future__ import annotations

import threading
from typing import Any

from schedules.actions import perform
from schedules.context import Lifecycle
from schedules.dispatcher import Dispatcher

__all__ = ["FakeClock", "InProcessRunner"]


class FakeClock:
    """A settable clock: ``clock()`` returns the current fake epoch seconds."""

    def __init__(self, start: float) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def set(self, when: float) -> None:
        with self._lock:
            self._now = float(when)

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += seconds
            return self._now

    def sleep(self, seconds: float) -> None:
        """What ``time.sleep`` is to the real clock: time passes, at once."""
        self.advance(max(seconds, 0.0))


class InProcessRunner:
    """Ticks a dispatcher and performs what it claims, in this process."""

    def __init__(self, ctx: Lifecycle, *, batch: int = 200, ahead_s: float = 0.0) -> None:
        self.ctx = ctx
        self.issued: list[str] = []
        self.results: list[dict[str, Any]] = []
        self.dispatcher = Dispatcher(
            ctx.store,
            self._collect,
            lease_s=ctx.lease_s,
            clock=ctx.clock,
            batch=batch,
            ahead_s=ahead_s,
        )

    def _collect(self, pairs: list[tuple[str, float]], now: float) -> int:
        self.issued.extend(action for action, _ in pairs)
        return 0

    def claim(self) -> list[str]:
        """One dispatcher tick; returns the claimed action ids without performing them."""
        start = len(self.issued)
        self.dispatcher.tick()
        return self.issued[start:]

    def step(self) -> list[dict[str, Any]]:
        """One tick, then perform every claimed action (in claim order)."""
        results = [perform(self.ctx, action) for action in self.claim()]
        self.results.extend(results)
        return results

    def run_until(self, when: float, step_s: float = 1.0) -> list[dict[str, Any]]:
        """Advance the fake clock to ``when`` in ``step_s`` steps, stepping at each."""
        clock = self.ctx.clock
        assert isinstance(clock, FakeClock), "run_until needs a FakeClock"
        done: list[dict[str, Any]] = []
        while clock() < when:
            clock.set(min(clock() + step_s, when))
            done.extend(self.step())
        return done

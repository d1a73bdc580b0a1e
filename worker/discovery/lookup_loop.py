"""The look-up loop: one budget-aware loop per discovery worker drains the look-up queue.

Room look-ups are not tasks that retry: a request puts its room in one Redis queue (``lookups``,
a zset scored by when it may run) and every discovery worker runs this loop, which takes the
earliest due room for a lease (``lease_due.lua``: two loops never take the same room), runs its
look-up and settles the queue entry:

- done: off the queue, unless the request widened or came again meanwhile (then due at once);
- denied by the budget (or a 299): back in the queue at the moment the budget names, which is
  not an error and costs no back-off;
- a vendor error: back-off ``RETRY_BACKOFF_BASE_S`` doubled per error of that request, up to
  ``RETRY_BACKOFF_MAX_S``; after :data:`MAX_ERRORS` errors the request is dropped (its files
  are delivered at their look-up deadline), so a later request starts afresh.

Low priority: when no room look-up is due, the loop runs one look-up of the missing-file judge
(:mod:`worker.discovery.missing`), so those never delay a look-up that files wait on.

Nothing is stranded: the room's lease is short (``DISCOVERY_LEASE_S``) and renewed by this
process's heartbeat while its look-up runs, so a killed worker's room comes back within one lease
and a slow live look-up is never doubled; a lost or stale task cannot lose a look-up because no
task carries one.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Protocol

from worker.discovery.heartbeat import Heartbeat
from worker.discovery.lookups import LookupRunner, RoomLookups
from worker.threads import DaemonLoop

__all__ = ["MAX_ERRORS", "LookupLoop", "LowPriorityLookups"]

log = logging.getLogger(__name__)

MAX_ERRORS = 8
# How often an idle loop looks at the queue head (one ZRANGE): a new request waits at most this.
IDLE_S = 0.5


class LowPriorityLookups(Protocol):
    """Look-ups that run only when no room look-up is due (the missing-file judge's)."""

    def step(self) -> str | None:
        """Run the earliest due one, if any; returns what it was for."""

    def next_at(self) -> float | None:
        """When the earliest may run (epoch s), or None."""


class LookupLoop(DaemonLoop):
    """Drains the look-up queue; :meth:`step` runs at most one look-up."""

    thread_name = "discovery-lookups"
    loop_name = "look-up loop"

    def __init__(
        self,
        lookups: RoomLookups,
        runner: LookupRunner,
        *,
        lease_s: float,
        backoff_base_s: float,
        backoff_max_s: float,
        heartbeat: Heartbeat,
        rng: random.Random | None = None,
        low: LowPriorityLookups | None = None,
    ) -> None:
        self.lookups = lookups
        self.low = low
        self.runner = runner
        self.lease_ms = int(lease_s * 1000)
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.heartbeat = heartbeat
        self.rng = rng or random.Random()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> str | None:
        """Run the earliest due look-up, if any; returns its room."""
        rooms = self.lookups.due(self.lease_ms)
        if not rooms:
            return self.low.step() if self.low is not None else None
        room = rooms[0]
        # Released before the entry is settled below: no heartbeat can undo that settlement.
        with self.heartbeat.holding(self.lookups.keys.lookup_queue, room):
            result = self.runner.room(room)
        if result.status in ("done", "nothing"):
            self.lookups.settled(room)
        elif result.status == "retry" and result.retry_after is not None:
            # The budget's wait (or a 299's closed window): not an error, no back-off.
            self.lookups.postpone(room, result.retry_after)
        else:
            errors = self.lookups.count_error(room)
            if errors > MAX_ERRORS:
                log.warning("room look-up of %s dropped after %d vendor errors", room, errors - 1)
                self.lookups.finish(room, None)
                self.lookups.settled(room)
            else:
                self.lookups.postpone(room, self._backoff(errors))
        return room

    def drain(self) -> list[str]:
        """Run every look-up due now (tests, in one process)."""
        done = []
        while (room := self.step()) is not None:
            done.append(room)
        return done

    def _backoff(self, errors: int) -> float:
        delay = min(self.backoff_base_s * 2 ** min(errors - 1, 16), self.backoff_max_s)
        return self.rng.uniform(0.5, 1.0) * delay

    def _wait_s(self) -> float:
        heads = [self.lookups.next_at(), self.low.next_at() if self.low is not None else None]
        head = min((h for h in heads if h is not None), default=None)
        if head is None:
            return IDLE_S
        return min(max(head - self.lookups.clock(), 0.0), IDLE_S)

    def run(self) -> None:
        while not self._stop.is_set():
            ok, wait = self.attempt(self._step_then_wait)
            self._stop.wait(wait if ok else 1.0)

    def _step_then_wait(self) -> float:
        """One step, then how long to wait before the next (none after a look-up ran)."""
        return 0.0 if self.step() is not None else self._wait_s()

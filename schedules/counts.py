"""Bookings per state, kept exact by the lifecycle scripts instead of counted by a scan.

Every write of a booking's state goes through ``set_booking_state`` (``worker/lua/lib.lua``),
which moves one count from the old state to the new one in ``lc:counts`` in the same atomic step.
A finished booking's hash expires after the retention on its own, which no script sees: so
``retire_booking`` also adds it to ``lc:ended`` scored by its expiry, and
:meth:`BookingCounts.prune` (``prune_ended.lua``) takes expired ones out of the counts, a
bounded batch per call. It runs at
every ``/metrics`` scrape and from a loop in each lifecycle worker (:class:`EndedPruner`), so the
zset holds only bookings still retained plus those expired since the last run: a pending booking
costs nothing more than its count.

:func:`scan_counts` counts by a full SCAN (the old way, O(bookings)); :meth:`BookingCounts.rebuild`
writes its result over the kept counts, for an operator who finds them drifted (``anyrtc-recorder
booking-counts --rebuild``; run it with the lifecycle workers stopped, as a state write during the
scan may be counted before or after it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from schedules.keys import LifecycleKeys
from schedules.layout import STATE_FIELD, num_text
from worker.redis import ScriptSet, scripts_for
from worker.threads import DaemonLoop

__all__ = [
    "BOOKING_STATES",
    "ENDED_STATES",
    "BookingCounts",
    "EndedPruner",
    "Pruned",
    "ScannedCounts",
    "scan_counts",
]

BOOKING_STATES = (
    "scheduled",
    "starting",
    "recording",
    "stopping",
    "stopped",
    "failed",
    "cancelled",
)
#: States whose booking hash expires after the retention (``ENDED`` in lib.lua).
ENDED_STATES = ("stopped", "failed", "cancelled")
#: Members pruned per script call: keeps each call short next to the lifecycle's scripts.
PRUNE_BATCH = 500
_SCAN_COUNT = 1000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pruned:
    """One prune run: counts taken away, members scored again (hash not yet expired), members
    dropped without a count change, and whether expired members may remain (budget used up)."""

    pruned: int = 0
    rescored: int = 0
    dropped: int = 0
    more: bool = False


@dataclass(frozen=True)
class ScannedCounts:
    """What a full scan finds: bookings per state, and the finished ones with their expiry."""

    counts: dict[str, int]
    ended: dict[str, float]


class BookingCounts:
    """The kept per-state counts of one deployment prefix."""

    def __init__(
        self, client: redis.Redis, keys: LifecycleKeys, scripts: ScriptSet | None = None
    ) -> None:
        self.r = client
        self.keys = keys
        self.scripts = scripts or scripts_for(client, "schedules.lua")

    def read(self) -> dict[str, int]:
        """Bookings per state (every state of :data:`BOOKING_STATES`, 0 when none)."""
        kept = self.r.hgetall(self.keys.counts)
        counts = dict.fromkeys(BOOKING_STATES, 0)
        for state, count in kept.items():
            counts[str(state)] = int(count)
        return counts

    def prune(self, now: float, *, budget: int = 10 * PRUNE_BATCH) -> Pruned:
        """Take bookings whose hash expired by ``now`` out of the counts, at most ``budget``
        members (in calls of :data:`PRUNE_BATCH`)."""
        pruned = rescored = dropped = 0
        left = budget
        while left > 0:
            members = self.r.zrangebyscore(
                self.keys.ended, "-inf", now, start=0, num=min(PRUNE_BATCH, left)
            )
            if not members:
                return Pruned(pruned, rescored, dropped, False)
            keys = [self.keys.counts, self.keys.ended]
            keys += [self.keys.booking(m.partition(":")[2]) for m in members]
            p, r, d = self.scripts.prune_ended(keys=keys, args=[num_text(now), *members])
            pruned, rescored, dropped = pruned + int(p), rescored + int(r), dropped + int(d)
            left -= len(members)
        more = bool(self.r.zcount(self.keys.ended, "-inf", now))
        return Pruned(pruned, rescored, dropped, more)

    def rebuild(self, scanned: ScannedCounts) -> None:
        """Replace the kept counts and the ended zset by ``scanned`` (one transaction)."""
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(self.keys.counts, self.keys.ended)
        pipe.hset(self.keys.counts, mapping={s: c for s, c in scanned.counts.items()})
        members = list(scanned.ended.items())
        for i in range(0, len(members), _SCAN_COUNT):
            pipe.zadd(self.keys.ended, dict(members[i : i + _SCAN_COUNT]))
        pipe.execute()


def scan_counts(client: redis.Redis, keys: LifecycleKeys, now: float) -> ScannedCounts:
    """Count every booking hash by a SCAN (O(bookings): for checks and rebuilds, not scrapes).
    A finished booking's expiry is ``now`` plus its remaining time to live."""
    counts = dict.fromkeys(BOOKING_STATES, 0)
    ended: dict[str, float] = {}
    prefix_len = len(keys.booking(""))
    batch: list[str] = []

    def flush() -> None:
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.hget(key, STATE_FIELD)
            pipe.pttl(key)
        replies = pipe.execute()
        for key, state, ttl_ms in zip(batch, replies[::2], replies[1::2], strict=True):
            if not state:
                continue
            counts[str(state)] = counts.get(str(state), 0) + 1
            if state in ENDED_STATES and int(ttl_ms) > 0:
                ended[f"{state}:{key[prefix_len:]}"] = now + int(ttl_ms) / 1000
        batch.clear()

    pattern = keys.booking("*").replace("[", r"\[")
    for key in client.scan_iter(match=pattern, count=_SCAN_COUNT, _type="hash"):
        batch.append(key)
        if len(batch) >= _SCAN_COUNT:
            flush()
    if batch:
        flush()
    return ScannedCounts(counts, ended)


class EndedPruner(DaemonLoop):
    """Prunes expired bookings from the counts every ``interval_s`` in one lifecycle worker
    thread, so the ended zset stays bounded even when nothing scrapes ``/metrics``. Several
    workers may run one each: the script skips what another already pruned."""

    thread_name = "lifecycle-counts"

    def __init__(
        self,
        counts: BookingCounts,
        *,
        clock: Callable[[], float] = time.time,
        interval_s: float = 10.0,
    ) -> None:
        self.counts = counts
        self.clock = clock
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = None

    def run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                done = self.counts.prune(self.clock())
            except redis.RedisError as exc:
                if not failing:
                    log.warning("booking counts: prune failed (%s); trying again", exc)
                failing = True
                done = Pruned()
            else:
                failing = False
            # A backlog (budget used up) is worked off at once rather than one budget a period.
            self._stop.wait(0 if done.more else self.interval_s)

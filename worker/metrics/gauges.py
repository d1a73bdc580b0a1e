"""The deployment's state read from Redis now: what ``/metrics`` exports as gauges and what the
console's ``budget`` and ``doctor`` report. Every read is one pipeline or a SCAN of a small key
space; the bookings per state are the counts the lifecycle scripts keep (``schedules/counts.py``),
of which a scrape first prunes the bookings expired since the last run (its only write)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import redis

from schedules.counts import BOOKING_STATES, BookingCounts
from schedules.keys import LifecycleKeys
from worker.discovery.keys import DiscoveryKeys

__all__ = [
    "BOOKING_STATES",
    "BookingEvents",
    "Budget",
    "Snapshot",
    "read_booking_events",
    "read_budget",
    "read_snapshot",
]

_SCAN_COUNT = 1000
# Booking events whose age is read: few wait unless the downstream broker or the teller is down.
_EVENT_SAMPLE = 200


@dataclass(frozen=True)
class BookingEvents:
    """Booking events (``booking.v1``) told by the lifecycle and not yet published: how many,
    and the age (s) of the oldest of the first :data:`_EVENT_SAMPLE` (None when none wait)."""

    waiting: int
    oldest_s: float | None

    def older_than(self, seconds: float) -> bool:
        return self.oldest_s is not None and self.oldest_s > seconds


@dataclass(frozen=True)
class Budget:
    """The query budget of one app id now: slots taken in the current window, the limit, when
    the next slot frees (0 when one is free) and the look-ups waiting for a slot."""

    used: int
    limit: int
    window_s: float
    next_free_s: float
    waiting_lookups: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "used": self.used,
            "limit": self.limit,
            "window_s": self.window_s,
            "next_free_s": self.next_free_s,
            "waiting_lookups": self.waiting_lookups,
        }


@dataclass(frozen=True)
class Snapshot:
    """Gauges of one deployment (``next_action_s`` is None when nothing is booked)."""

    bookings: dict[str, int]
    next_action_s: float | None
    outbox_pending: int
    dead_letters: int
    dead_letters_replayed: int
    callbacks: dict[str, int]
    booking_events: BookingEvents = field(default_factory=lambda: BookingEvents(0, None))
    #: The callback-silence warning is raised (``worker/discovery/silence.py``).
    callback_silence: bool = False


def read_budget(
    client: redis.Redis, prefix: str, app_id: str, limit: int, window_s: float
) -> Budget:
    """Slots of the sliding log (``sliding_window.lua``) inside the window, on Redis time."""
    keys = DiscoveryKeys(prefix)
    seconds, micros = client.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    window_ms = int(window_s * 1000)
    entries = client.zrangebyscore(keys.budget(app_id), now_ms - window_ms, "+inf", withscores=True)
    # A room look-up stays requested (``lookup:<room_id>``) until a query slot runs it.
    waiting = sum(1 for _ in client.scan_iter(match=keys.lookup("*"), count=_SCAN_COUNT))
    used = len(entries)
    next_free_s = 0.0
    if used >= limit:
        # The (used - limit + 1)th oldest entry leaves the window first among those that matter.
        oldest = sorted(score for _, score in entries)[used - limit]
        next_free_s = max(0.0, (oldest + window_ms - now_ms) / 1000)
    return Budget(used, limit, window_s, next_free_s, waiting)


def read_booking_events(client: redis.Redis, prefix: str, now: float) -> BookingEvents:
    """Members of ``lc:outbox``: each is published and removed by a discovery worker's teller
    within a second, so a member that stays says the publish keeps failing or no teller runs.
    The zset is scored by the next publish attempt (a lease pushes it on), so the age is read
    from each member's ``at`` (when the transition happened)."""
    key = LifecycleKeys(prefix).outbox
    pipe = client.pipeline(transaction=False)
    pipe.zcard(key)
    pipe.zrange(key, 0, _EVENT_SAMPLE - 1)
    waiting, sample = pipe.execute()
    told = []
    for member in sample:
        try:
            told.append(float(json.loads(member)["at"]))
        except (ValueError, KeyError, TypeError):
            continue
    oldest = max(0.0, now - min(told)) if told else None
    return BookingEvents(int(waiting), oldest)


def read_snapshot(client: redis.Redis, prefix: str, now: float) -> Snapshot:
    """Every gauge but the budget and the queues (see :func:`read_budget`, ``queues.py``)."""
    lc, disc = LifecycleKeys(prefix), DiscoveryKeys(prefix)
    counts = BookingCounts(client, lc)
    counts.prune(now)
    bookings = counts.read()
    pipe = client.pipeline(transaction=False)
    pipe.zrange(lc.due, 0, 0, withscores=True)
    pipe.zcard(disc.outbox_pending)
    pipe.hvals(lc.dl_entries)
    pipe.hmget(disc.stats, ["callback_accepted", "callback_rejected"])
    pipe.hexists(disc.silence, "warned_ms")
    first_due, outbox, letters, callbacks, silence = pipe.execute()
    replayed = sum(1 for raw in letters if json.loads(raw).get("replayed_at") is not None)
    return Snapshot(
        bookings=bookings,
        next_action_s=(float(first_due[0][1]) - now) if first_due else None,
        outbox_pending=int(outbox),
        dead_letters=len(letters) - replayed,
        dead_letters_replayed=replayed,
        callbacks={"accepted": int(callbacks[0] or 0), "rejected": int(callbacks[1] or 0)},
        booking_events=read_booking_events(client, prefix, now),
        callback_silence=bool(silence),
    )


"""What is waiting longer than it should, read from Redis: the doctor's ``backlog`` check.

Each count is a symptom an operator can act on:

- booked actions past their due time and not claimed: no lifecycle worker is running its
  dispatcher, or it cannot keep up;
- claimed actions whose lease ran out long ago and were not issued again: the same;
- dead letters not replayed yet: events or bookings given up on (``anyrtc-recorder deadletters
  list``); a replayed one is kept for its history and needs nobody;
- file messages claimed for publishing long ago and still not confirmed sent: the downstream
  broker refuses them, or no discovery worker runs the sweep that publishes them again;
- booking events (``booking.v1``) told by the lifecycle and unpublished for long: the same, for
  the booking teller every discovery worker that consumes ``query`` runs;
- rejected callbacks, counted since the deployment began (information only, always shown:
  ``anyrtc-recorder rejects`` lists the newest with their reasons).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import redis

from schedules.keys import LifecycleKeys
from worker.discovery.keys import DiscoveryKeys
from worker.metrics.gauges import BookingEvents, read_booking_events

__all__ = ["LATE_ACTION_S", "STUCK_MESSAGE_S", "Backlog", "read_backlog"]

#: An action this far past its due time (or its lease) has been missed by every dispatcher:
#: they tick every second and claim up to DISPATCH_AHEAD_S early.
LATE_ACTION_S = 10.0
#: A message claimed this long ago and still unsent has outlived many publish leases (30 s) and
#: sweeps.
STUCK_MESSAGE_S = 300.0
# Unpublished messages whose age is read (they are few unless the downstream broker is down).
_AGE_SAMPLE = 200


@dataclass(frozen=True)
class Backlog:
    """Counts of what is late (see the module docstring)."""

    late_actions: int
    expired_leases: int
    dead_letters: int
    unpublished: int
    oldest_unpublished_s: float | None
    rejected_callbacks: int
    replayed_dead_letters: int = 0
    booking_events: BookingEvents = field(default_factory=lambda: BookingEvents(0, None))

    def problems(self) -> list[str]:
        """One sentence per count that needs an operator, saying what to look at."""
        found = []
        if self.late_actions:
            found.append(
                f"{self.late_actions} booked action(s) more than {LATE_ACTION_S:.0f}s past due "
                "and unclaimed: is a lifecycle worker running?"
            )
        if self.expired_leases:
            found.append(
                f"{self.expired_leases} claimed action(s) more than {LATE_ACTION_S:.0f}s past "
                "their lease: is a lifecycle worker running?"
            )
        if self.dead_letters:
            found.append(
                f"{self.dead_letters} dead letter(s) not replayed: anyrtc-recorder deadletters list"
            )
        oldest = self.oldest_unpublished_s
        if oldest is not None and oldest > STUCK_MESSAGE_S:
            found.append(
                f"{self.unpublished} file message(s) unpublished, the oldest claimed "
                f"{oldest:.0f}s ago: check the downstream broker and the discovery worker"
            )
        events = self.booking_events
        if events.older_than(STUCK_MESSAGE_S):
            found.append(
                f"{events.waiting} booking event(s) unpublished, the oldest told "
                f"{events.oldest_s:.0f}s ago: check the downstream broker and that a discovery "
                "worker consumes query (its booking teller publishes them)"
            )
        return found

    def rejects_line(self) -> str:
        """The rejected callbacks, said whatever else is found."""
        return f"{self.rejected_callbacks} callback(s) rejected: anyrtc-recorder rejects"

    def summary(self) -> str:
        return (
            f"late actions {self.late_actions}, expired leases {self.expired_leases}, "
            f"dead letters {self.dead_letters} (replayed {self.replayed_dead_letters}), "
            f"unpublished messages {self.unpublished}, "
            f"unpublished booking events {self.booking_events.waiting}, "
            f"rejected callbacks {self.rejected_callbacks}"
        )


def read_backlog(client: redis.Redis, prefix: str, now: float) -> Backlog:
    """Count the backlog of the deployment under ``prefix`` at ``now`` (epoch s)."""
    lc, disc = LifecycleKeys(prefix), DiscoveryKeys(prefix)
    late = now - LATE_ACTION_S
    pipe = client.pipeline(transaction=False)
    pipe.zcount(lc.due, "-inf", late)
    pipe.zcount(lc.inflight, "-inf", late)
    pipe.hvals(lc.dl_entries)
    pipe.zcard(disc.outbox_pending)
    pipe.llen(disc.rejects)
    pipe.hget(disc.stats, "callback_rejected")
    pipe.zrange(disc.outbox_pending, 0, _AGE_SAMPLE - 1)
    late_actions, expired, letters, unpublished, kept, rejected, sample = pipe.execute()
    replayed = sum(1 for raw in letters if json.loads(raw).get("replayed_at") is not None)
    # The counter counts every rejection; the list keeps the newest (older counters may lack it).
    rejects = max(int(rejected or 0), int(kept))
    oldest_s = None
    if sample:
        # Scored by the next publish attempt (each sweep pushes it on), not by age: the age is
        # in each record. Normally this list is empty; a long one is sampled.
        pipe = client.pipeline(transaction=False)
        for fid in sample:
            pipe.hget(disc.outbox(str(fid)), "claimed_ms")
        claimed = [int(ms) for ms in pipe.execute() if ms is not None]
        if claimed:
            oldest_s = max(0.0, now - min(claimed) / 1000)
    return Backlog(
        int(late_actions),
        int(expired),
        len(letters) - replayed,
        int(unpublished),
        oldest_s,
        rejects,
        replayed,
        read_booking_events(client, prefix, now),
    )

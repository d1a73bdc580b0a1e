"""Booking events downstream: the lifecycle's outbox and the loop that publishes it.

The lifecycle scripts add each transition a booking system acts on to the zset ``lc:outbox``
in the step that makes it (``tell`` in ``worker/lua/lib.lua``), scored by when it is due. Every
discovery worker runs a :class:`BookingTeller`: it takes the due members for a lease
(``lease_due.lua``: two tellers never take the same one), publishes each as ``booking.v1`` and
removes it. A teller that dies after taking a member, or whose publish fails, leaves it in the
zset; it is due again when the lease ends and goes out with the same message id. So every
transition is published, and a redelivery (of a task, of a member) never makes a second id.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

import redis

from schedules.keys import LifecycleKeys
from worker.discovery.booking_message import build_booking_message
from worker.discovery.fanout import PUBLISH_LEASE_S, Publisher
from worker.errors import PublishFailed
from worker.redis import scripts_for
from worker.threads import DaemonLoop

__all__ = ["IDLE_S", "BookingOutbox", "BookingTeller"]

log = logging.getLogger(__name__)

#: How often an idle teller looks at the outbox (one ZRANGEBYSCORE): a transition waits at most
#: this long for its publish.
IDLE_S = 0.5
_BATCH = 100


class BookingOutbox:
    """The Python face of ``lc:outbox``; ``clock`` (epoch s) is the injected clock."""

    def __init__(
        self,
        client: redis.Redis,
        keys: LifecycleKeys,
        *,
        lease_s: float = PUBLISH_LEASE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.key = keys.outbox
        self.lease_ms = int(lease_s * 1000)
        self.clock = clock
        self._lease = scripts_for(client, "worker.discovery.lua").lease_due

    def take(self, limit: int = _BATCH) -> list[str]:
        """Due members (JSON facts), leased to the caller, oldest first."""
        taken = self._lease(keys=[self.key], args=[int(self.clock() * 1000), self.lease_ms, limit])
        return [str(m) for m in taken]

    def done(self, member: str) -> None:
        self.client.zrem(self.key, member)

    def pending(self) -> int:
        return int(self.client.zcard(self.key))


class BookingTeller(DaemonLoop):
    """Publishes the outbox; :meth:`step` publishes what is due now."""

    thread_name = "booking-teller"
    loop_name = "booking teller"

    def __init__(self, outbox: BookingOutbox, publisher: Publisher) -> None:
        self.outbox = outbox
        self.publisher = publisher
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> list[str]:
        """Publish every due member; returns the message ids published."""
        sent = []
        for member in self.outbox.take():
            body = build_booking_message(json.loads(member))
            try:
                self.publisher.publish(body, body["event"], body["message_id"])
            except PublishFailed:
                # Left in the outbox: due again when its lease ends, with the same id.
                log.exception("booking message %s not published yet", body["message_id"])
                continue
            self.outbox.done(member)
            sent.append(body["message_id"])
        return sent

    def run(self) -> None:
        while not self._stop.is_set():
            self.attempt(self.step)
            self._stop.wait(IDLE_S)

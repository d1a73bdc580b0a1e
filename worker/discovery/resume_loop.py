"""The resume loop: every discovery worker takes over, within seconds, what a dead one held.

Each discovery worker runs this loop (one thread, started by the ``worker_ready`` hook in
worker/tasks/discovery.py). Every ``DISCOVERY_LEASE_S / 3`` it

- re-publishes outbox messages whose claim lease ran out (``lease_due.lua`` on
  ``outbox:pending``: two loops never take the same message): the claimer died between claim and
  confirm, or its publish failed. The message keeps its id and body; a live claimer's lease is
  renewed by its heartbeat, so it is never doubled while it publishes;
- resumes a poll whose holder died (``poll_orphaned.lua``: its lock expired, its mark did not):
  it queues a ``discovery.poll``, which carries on from the saved cursor.

So neither waits for the next poll's sweep, beat's next poll or the broker's visibility timeout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

from worker.discovery.fanout import FanOut
from worker.discovery.keys import DiscoveryKeys
from worker.discovery.settle import Enqueue
from worker.errors import PublishFailed
from worker.redis import scripts_for
from worker.threads import DaemonLoop

__all__ = ["ResumeLoop"]

log = logging.getLogger(__name__)

_BATCH = 100


class ResumeLoop(DaemonLoop):
    """Takes over dead workers' polls and unconfirmed messages, and delivers the files whose
    wait (for a callback or a room's look-ups) is over; :meth:`step` does one round."""

    thread_name = "discovery-resume"
    loop_name = "resume loop"

    def __init__(
        self,
        client: redis.Redis,
        keys: DiscoveryKeys,
        fanout: FanOut,
        enqueue: Enqueue,
        *,
        interval_s: float,
        deliver_waits: Callable[[], list[str]],
    ) -> None:
        self.client = client
        self.keys = keys
        self.fanout = fanout
        self.enqueue = enqueue
        self.interval_s = interval_s
        self.deliver_waits = deliver_waits
        self._orphaned = scripts_for(client, "worker.discovery.lua").poll_orphaned
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._publish_failing = False

    def step(self) -> tuple[str | None, list[str]]:
        """One round: the dead poll's task id (a poll was queued), and the messages published."""
        dead = self._orphaned(
            keys=[self.keys.poll_running, self.keys.poll_lock, self.keys.poll_retry]
        )
        if dead:
            log.warning("poll %s was held by a worker that is gone; resuming it", dead)
            self.enqueue("discovery.poll", [], 0.0)
        published = self._republish()
        self.deliver_waits()
        return (str(dead) if dead else None), published

    def _republish(self) -> list[str]:
        published: list[str] = []
        for fid in self.fanout.outbox.due(_BATCH):
            try:
                if self.fanout.republish(fid):
                    published.append(fid)
            except PublishFailed as exc:
                # The broker is down: the rest would fail too. They stay pending and come back
                # after their lease (taken just now), so this retries once a lease.
                if not self._publish_failing:
                    log.warning("re-publishing unconfirmed messages failed: %s", exc)
                self._publish_failing = True
                break
            else:
                self._publish_failing = False
        if published:
            log.info("re-published %d unconfirmed messages", len(published))
        return published

    def run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.attempt(self.step)

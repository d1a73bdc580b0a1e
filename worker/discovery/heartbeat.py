"""The discovery heartbeat: a living process keeps the discovery work it holds leased.

Discovery's leases are short (``DISCOVERY_LEASE_S``, default 3 s) so that work a dead worker
held is taken over within seconds: the poll lock, an outbox message being published, a room
being looked up. While this process does that work, one thread renews every lease it holds
every ``lease_s / 3`` (the lifecycle's rule, schedules/leases.py), so a slow live call is never
doubled however long the HTTP timeout.

The thread starts with the first hold, so no code path can hold work unrenewed. A renewal and a
release never overlap (one lock): after :meth:`holding` returns, no heartbeat can push back a
schedule entry its caller settles next. Nothing is held longer than ``max_hold_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import redis
from redis.exceptions import LockError
from redis.lock import Lock

from worker.threads import DaemonLoop

__all__ = ["Heartbeat", "HeldPublisher"]

log = logging.getLogger(__name__)


class Heartbeat(DaemonLoop):
    """What this process holds (locks, leased zset members) and the thread that renews it."""

    thread_name = "discovery-leases"

    def __init__(
        self,
        client: redis.Redis,
        lease_s: float,
        *,
        clock: Callable[[], float] = time.time,
        max_hold_s: float = 600.0,
    ) -> None:
        self.client = client
        self.lease_s = lease_s
        self.clock = clock
        self.max_hold_s = max_hold_s
        self._locks: dict[int, tuple[Lock, float]] = {}
        self._members: dict[tuple[str, str], list[float]] = {}  # (zset, member) -> since
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    @property
    def interval_s(self) -> float:
        """Three heartbeats per lease: two may be late before the work is taken over."""
        return max(self.lease_s / 3.0, 0.05)

    @contextmanager
    def holding_lock(self, lock: Lock) -> Iterator[None]:
        """Keep ``lock`` (acquired with ``thread_local=False``) from expiring while the block
        runs."""
        with self._lock:
            self._locks[id(lock)] = (lock, time.monotonic())
        self.start()
        try:
            yield
        finally:
            with self._lock:
                self._locks.pop(id(lock), None)

    @contextmanager
    def holding(self, zset: str, member: str) -> Iterator[None]:
        """Keep ``member``'s lease in schedule ``zset`` (score: when it is due again, ms on the
        injected clock) pushed to ``now + lease`` while the block runs."""
        key = (zset, member)
        with self._lock:
            self._members.setdefault(key, []).append(time.monotonic())
        self.start()
        try:
            yield
        finally:
            with self._lock:
                holds = self._members.get(key, [])
                if holds:
                    holds.pop()
                if not holds:
                    self._members.pop(key, None)

    def held(self) -> tuple[list[Lock], list[tuple[str, str]]]:
        """The locks and members held now (holds older than ``max_hold_s`` are dropped)."""
        now = time.monotonic()
        with self._lock:
            return self._held(now)

    def _held(self, now: float) -> tuple[list[Lock], list[tuple[str, str]]]:
        for ident, (lock, since) in list(self._locks.items()):
            if now - since > self.max_hold_s:
                log.warning("lock %s held over %.0fs: left to expire", lock.name, self.max_hold_s)
                del self._locks[ident]
        for key, holds in list(self._members.items()):
            if now - min(holds) > self.max_hold_s:
                log.warning("%s held over %.0fs: left to its lease", key[1], self.max_hold_s)
                del self._members[key]
        return [lock for lock, _ in self._locks.values()], list(self._members)

    def renew(self) -> None:
        """One heartbeat. A lock lost meanwhile (it expired) is dropped: its work is another
        process's now, and the holder finds out at its next ``reacquire``."""
        with self._lock:
            locks, members = self._held(time.monotonic())
            for lock in locks:
                try:
                    lock.reacquire()
                except LockError:
                    log.warning("lock %s lost before its heartbeat", lock.name)
                    self._locks.pop(id(lock), None)
            if members:
                due_ms = int((self.clock() + self.lease_s) * 1000)
                pipe = self.client.pipeline(transaction=False)
                for zset, member in members:
                    # XX: an entry settled meanwhile (sent, looked up) is not brought back.
                    pipe.zadd(zset, {member: due_ms}, xx=True)
                pipe.execute()

    def run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.renew()
            except Exception as exc:
                # Redis down: every holder finds out by itself; one line here, not one a beat.
                if not self._failing:
                    log.warning("discovery heartbeat failed (%s); retrying", type(exc).__name__)
                self._failing = True
            else:
                self._failing = False


class HeldPublisher:
    """A publisher whose :meth:`publish` keeps the message's outbox claim leased meanwhile.

    The message id is the file's id (the outbox member), so every path that publishes (first
    delivery, re-publish) is covered without touching the fan-out. Everything else is the
    wrapped publisher's.
    """

    def __init__(self, publisher: Any, heartbeat: Heartbeat, pending_key: str) -> None:
        self.inner = publisher
        self.heartbeat = heartbeat
        self.pending_key = pending_key

    def publish(self, body: Mapping[str, Any], routing_key: str, message_id: str) -> None:
        with self.heartbeat.holding(self.pending_key, message_id):
            self.inner.publish(body, routing_key, message_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

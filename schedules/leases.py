"""The lease keeper: a living process's heartbeat for the lifecycle work it holds.

Leases are short (``ACTION_LEASE_S``, default 3 s) so that a dead worker's work is issued again
within seconds. A living process keeps what it holds from expiring: every ``lease_s / 3`` one
script call (renew_leases.lua) pushes to ``now + lease_s`` the lease of

- every claimed action whose message it has received and not finished (registered by task id
  from Celery's ``task_received`` signal, released at ``task_postrun``; see dispatch_step.py),
  so an action waiting for its eta or for a free thread is not taken over;
- every vendor call attempt it is making (:meth:`LeaseKeeper.calling`, or
  :meth:`LeaseKeeper.hold_attempt` from the call until its reply is settled), so a slow live call
  is never doubled, however long the HTTP timeout.

Nothing is held longer than ``max_hold_s`` (a hung thread must not pin work forever). Without
the thread running (tests on a fake clock) the keeper is bookkeeping only.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from schedules.store import LifecycleStore
from worker.threads import DaemonLoop

__all__ = ["LeaseKeeper", "forget_received"]

log = logging.getLogger(__name__)

_running: weakref.WeakSet[LeaseKeeper] = weakref.WeakSet()


def forget_received() -> None:
    """The worker lost its broker connection: Celery drops the messages it had received (those
    waiting for an eta or a thread; the broker delivers them again). Stop renewing them, so
    their leases run out and the dispatcher issues them again; calls in progress stay held."""
    for keeper in list(_running):
        keeper.forget_received()


@dataclass
class _Hold:
    actions: list[str]
    since: float
    attempt: tuple[str, str] | None = None
    refs: int = 1


@dataclass(eq=False)  # identity: kept in a WeakSet
class LeaseKeeper(DaemonLoop):
    """What this process holds, and the thread that renews its leases."""

    thread_name = "lifecycle-leases"

    store: LifecycleStore
    lease_s: float
    clock: Callable[[], float] = time.time
    max_hold_s: float = 600.0
    _holds: dict[str, _Hold] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _failing: bool = field(default=False, repr=False)

    @property
    def interval_s(self) -> float:
        """Three heartbeats per lease: two may be late before the work is taken over."""
        return max(self.lease_s / 3.0, 0.05)

    def hold(self, key: str, actions: Iterable[str]) -> None:
        """Keep the leases of ``actions`` alive under ``key`` (a task id) until released."""
        ids = [a for a in actions if isinstance(a, str)]
        with self._lock:
            held = self._holds.get(key)
            if held is None:
                self._holds[key] = _Hold(ids, self.clock())
            else:
                held.refs += 1  # the same task delivered twice to this process
                held.actions = list(dict.fromkeys([*held.actions, *ids]))

    def release(self, key: str) -> None:
        with self._lock:
            held = self._holds.get(key)
            if held is None:
                return
            held.refs -= 1
            if held.refs <= 0:
                del self._holds[key]

    def forget_received(self) -> None:
        """Drop every received-message hold (not the calls in progress)."""
        with self._lock:
            for key in [k for k, h in self._holds.items() if h.attempt is None]:
                del self._holds[key]

    @contextmanager
    def calling(self, op_id: str, token: str) -> Iterator[None]:
        """Keep the call attempt ``(op_id, token)`` leased while the block runs."""
        key = self.hold_attempt(op_id, token)
        try:
            yield
        finally:
            self.release_attempt(key)

    def hold_attempt(self, op_id: str, token: str) -> str:
        """Keep the call attempt ``(op_id, token)`` leased until :meth:`release_attempt` with
        the key returned (from before its call until its reply is settled)."""
        key = f"call:{token}"
        with self._lock:
            self._holds[key] = _Hold([], self.clock(), (op_id, token))
        return key

    def release_attempt(self, key: str) -> None:
        with self._lock:
            self._holds.pop(key, None)

    def held(self) -> tuple[list[str], list[tuple[str, str]]]:
        """The action ids and call attempts held now (expired holds dropped)."""
        now = self.clock()
        with self._lock:
            for key in [k for k, h in self._holds.items() if now - h.since > self.max_hold_s]:
                log.warning("%s held over %.0fs: left to its lease", key, self.max_hold_s)
                del self._holds[key]
            actions = list(dict.fromkeys(a for h in self._holds.values() for a in h.actions))
            attempts = [h.attempt for h in self._holds.values() if h.attempt is not None]
        return actions, attempts

    def renew(self) -> None:
        """One heartbeat; forgets actions that are no longer in flight."""
        actions, attempts = self.held()
        if not actions and not attempts:
            return
        kept, _ = self.store.renew_leases(
            now=self.clock(), lease_s=self.lease_s, actions=actions, attempts=attempts
        )
        gone = {a for a, still in zip(actions, kept, strict=True) if not still}
        if gone:
            with self._lock:
                for held in self._holds.values():
                    held.actions = [a for a in held.actions if a not in gone]

    def run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.renew()
            except Exception as exc:
                # Redis down: the dispatcher reports the outage; one line here, not one a beat.
                if not self._failing:
                    log.warning("lease heartbeat failed (%s); retrying", type(exc).__name__)
                self._failing = True
            else:
                self._failing = False

    def start(self) -> None:
        super().start()
        _running.add(self)

"""Room look-ups and re-lists: the low-priority queries, and the requests that ask for them.

:class:`RoomLookups` keeps at most one look-up queued per room (``lookup:<room>``, merged by
``lookup_request.lua``), the files waiting on each (``await:room:<room>``) and the one queue
of rooms to look up (``lookups``), drained by :mod:`worker.discovery.lookup_loop`.
:class:`LookupRunner` runs them with the low-priority vendor client (``reserve=1``: they never
take the poll's last slot of a window). A room look-up settles every waiting file of the room
whose upload time it covered: those it listed are delivered with their room (and ``file_id``);
the others learn this room was not theirs. A re-list lists a narrow time window for overdue
files of no known room.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

from worker.anyrtc.client import AnyRTCClient
from worker.discovery.keys import DiscoveryKeys
from worker.discovery.ops import OpsLog
from worker.discovery.record import Observation
from worker.discovery.registry import FileRegistry
from worker.errors import AnyRTCError, BudgetExhausted, RateLimited
from worker.redis import scripts_for

if TYPE_CHECKING:
    # Annotations only: settle.py imports this module (RoomLookups) at run time.
    from worker.discovery.settle import Settler

__all__ = ["LookupResult", "LookupRunner", "LookupWindow", "RoomLookups"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LookupWindow:
    """The upload window (epoch ms) a room look-up must cover, and its version."""

    beg_ms: int
    end_ms: int
    version: int


class RoomLookups:
    """``lookup:<room>`` requests and ``await:room:<room>`` waiters."""

    def __init__(
        self,
        client: redis.Redis,
        keys: DiscoveryKeys,
        *,
        ttl_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.keys = keys
        self.ttl_s = max(1, int(ttl_s))
        self.clock = clock
        scripts = scripts_for(client, "worker.discovery.lua")
        self._request = scripts.lookup_request
        self._settle = scripts.lookup_settle
        self._lease = scripts.lease_due

    def request(self, room_id: str, beg_ms: int, end_ms: int) -> bool:
        """Ask for a look-up of ``room_id`` (queued for the look-up loop); True when new."""
        created = self._request(
            keys=[self.keys.lookup(room_id), self.keys.lookup_queue],
            args=[beg_ms, end_ms, self.ttl_s, self._now_ms(), room_id],
        )
        return bool(int(created))

    def due(self, lease_ms: int, limit: int = 1) -> list[str]:
        """Rooms whose look-up may run now, each taken for ``lease_ms`` (lease_due.lua): if the
        taker dies, the room is due again when the lease ends."""
        taken = self._lease(keys=[self.keys.lookup_queue], args=[self._now_ms(), lease_ms, limit])
        return [str(room) for room in taken]

    def postpone(self, room_id: str, delay_s: float) -> None:
        """Run the look-up of ``room_id`` no sooner than ``delay_s`` from now."""
        at = self._now_ms() + max(0, int(delay_s * 1000))
        self.client.zadd(self.keys.lookup_queue, {room_id: at})

    def settled(self, room_id: str) -> bool:
        """The look-up ended: leave the queue unless a request is pending (lookup_settle.lua);
        True when the room stays queued."""
        keys = [self.keys.lookup(room_id), self.keys.lookup_queue]
        return bool(int(self._settle(keys=keys, args=[self._now_ms(), room_id])))

    def next_at(self) -> float | None:
        """When the earliest queued look-up may run (epoch s), or None."""
        head = self.client.zrange(self.keys.lookup_queue, 0, 0, withscores=True)
        return float(head[0][1]) / 1000 if head else None

    def count_error(self, room_id: str) -> int:
        """One more vendor error for the pending request of ``room_id``; how many so far."""
        return int(self.client.hincrby(self.keys.lookup(room_id), "errors", 1))

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def window(self, room_id: str) -> LookupWindow | None:
        data = self.client.hgetall(self.keys.lookup(room_id))
        if not data:
            return None
        return LookupWindow(int(data["beg_ms"]), int(data["end_ms"]), int(data["version"]))

    def finish(self, room_id: str, version: int | None) -> LookupWindow | None:
        """Drop the request served at ``version``; the newer window if it widened meanwhile."""
        key = self.keys.lookup(room_id)
        with self.client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)
                current = pipe.hgetall(key)
                if current and version is not None and int(current["version"]) != version:
                    pipe.unwatch()
                    return LookupWindow(
                        int(current["beg_ms"]), int(current["end_ms"]), int(current["version"])
                    )
                pipe.multi()
                pipe.delete(key)
                pipe.execute()
            except redis.WatchError:
                return self.window(room_id)
        return None

    def wait_for(self, room_id: str, fid: str) -> None:
        """Remember that ``fid`` waits for the look-up of ``room_id``."""
        key = self.keys.awaiting_room(room_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.sadd(key, fid)
        pipe.expire(key, self.ttl_s)
        pipe.execute()

    def take_waiting(self, room_id: str) -> list[str]:
        """Every file waiting for ``room_id`` (removed from the waiting set)."""
        key = self.keys.awaiting_room(room_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.smembers(key)
        pipe.delete(key)
        members, _ = pipe.execute()
        return sorted(str(m) for m in members)


@dataclass(frozen=True)
class LookupResult:
    """How a look-up ended; ``retry_after`` (s) when it must run again."""

    status: str  # done | retry | failed | nothing
    files: int = 0
    settled: int = 0
    retry_after: float | None = None
    error: AnyRTCError | None = None


class LookupRunner:
    """Runs room look-ups and re-lists with the low-priority client."""

    def __init__(
        self,
        vendor: AnyRTCClient,
        registry: FileRegistry,
        settler: Settler,
        lookups: RoomLookups,
        ops: OpsLog,
        *,
        page_max: int,
        window_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.vendor = vendor
        self.registry = registry
        self.settler = settler
        self.lookups = lookups
        self.ops = ops
        self.page_max = page_max
        self.window_s = window_s
        self.clock = clock

    def room(
        self, room_id: str, beg_ms: int | None = None, end_ms: int | None = None
    ) -> LookupResult:
        """Look ``room_id`` up over its requested window (or the one given)."""
        window = self.lookups.window(room_id)
        if window is None:
            if beg_ms is None or end_ms is None:
                return LookupResult("nothing")
            window = LookupWindow(beg_ms, end_ms, 0)
        try:
            page = self.vendor.list_by_room(room_id, window.beg_ms, window.end_ms)
        except (BudgetExhausted, AnyRTCError) as exc:
            return self._failed(exc, f"room {room_id}")
        self.ops.incr("calls_room")
        seen_ms = int(self.clock() * 1000)
        for file in page.files:
            self._sighted(Observation.from_vod(file, "room", seen_ms))
        settled = 0
        waiting = self.lookups.take_waiting(room_id)
        later = []
        for fid in waiting:
            upload = self.registry.get(fid).get("upload_ms")
            if upload and not window.beg_ms <= int(upload) <= window.end_ms:
                later.append(fid)  # asked for after this look-up started: the next one covers it
                continue
            self.settler.lookup_done(room_id, fid)
            settled += 1
        for fid in later:
            self.lookups.wait_for(room_id, fid)
        # A window widened meanwhile stays requested; the loop's lookups.settled() re-queues it.
        self.lookups.finish(room_id, window.version if window.version else None)
        return LookupResult("done", len(page.files), settled)

    def probe(
        self, room_id: str, beg_ms: int, end_ms: int
    ) -> tuple[LookupResult, list[Observation]]:
        """One room look-up over ``[beg_ms, end_ms]`` that serves no queued request: every file
        listed is settled as any look-up's (delivered in the usual way), and returned."""
        try:
            page = self.vendor.list_by_room(room_id, beg_ms, end_ms)
        except (BudgetExhausted, AnyRTCError) as exc:
            return self._failed(exc, f"room {room_id}"), []
        self.ops.incr("calls_room")
        seen_ms = int(self.clock() * 1000)
        listed = [Observation.from_vod(file, "room", seen_ms) for file in page.files]
        for obs in listed:
            self._sighted(obs)
        return LookupResult("done", len(listed)), listed

    def relist(self, beg_ms: int, end_ms: int) -> LookupResult:
        """Re-list ``[beg_ms, end_ms]`` by time (every page) for overdue files of no known room."""
        files = 0
        page_num = 1
        while True:
            try:
                page = self.vendor.list_by_time(beg_ms, end_ms, page_num, self.page_max)
            except (BudgetExhausted, AnyRTCError) as exc:
                return self._failed(exc, "relist")
            self.ops.incr("calls_relist")
            seen_ms = int(self.clock() * 1000)
            for file in page.files:
                files += 1
                self._sighted(Observation.from_vod(file, "poll", seen_ms))
            if not page.has_more or not page.files:
                return LookupResult("done", files)
            page_num += 1

    def _failed(self, exc: Exception, what: str) -> LookupResult:
        if isinstance(exc, BudgetExhausted):
            return LookupResult("retry", retry_after=exc.retry_after)
        assert isinstance(exc, AnyRTCError)
        if isinstance(exc, RateLimited):
            return LookupResult("retry", retry_after=self.window_s, error=exc)
        if exc.retryable:
            return LookupResult("retry", error=exc)
        self.ops.error("lookup", f"{what}: {exc}", code=str(exc.code))
        return LookupResult("failed", error=exc)

    def _sighted(self, obs: Observation) -> None:
        try:
            self.settler.sighted(obs)
        except (redis.ConnectionError, redis.TimeoutError):
            raise
        except Exception as exc:
            log.exception("could not process looked-up file %s", obs.download_url)
            self.ops.error("lookup-file", f"{type(exc).__name__}: {exc}", url=obs.download_url)

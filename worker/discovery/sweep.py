"""Housekeeping run before every poll: nothing here calls the vendor directly.

1. Outbox: messages claimed but not confirmed sent within their lease are re-published (same
   message id) by ``discovery.publish`` tasks.
2. Await: final files whose wait for a room is over are delivered (without a room if none came).
3. Checks: non-final files overdue past ``EXPECTED_TRANSCODE_S`` get one low-priority query each
   ``EXPECTED_TRANSCODE_S``: a room look-up when their room is known, else one narrow time
   re-list covering all of them. Files still not final after ``FOLLOW_LIMIT_S`` are given up
   (recorded in ``errors``).
4. The downstream exchange and queues are declared again (heals a lost binding table) and the
   audit queue is trimmed.

Every schedule is read with ``lease_due.lua``, so two sweeps at once never take the same file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from worker.discovery.correlate import Correlator
from worker.discovery.fanout import Outbox, Publisher
from worker.discovery.keys import DiscoveryKeys
from worker.discovery.lookups import RoomLookups
from worker.discovery.ops import OpsLog
from worker.discovery.record import is_final
from worker.discovery.registry import FileRegistry
from worker.discovery.settle import LOOKUP_PAD_MS, Enqueue, Settler
from worker.errors import PublishFailed
from worker.redis import scripts_for

__all__ = ["FOLLOW_LIMIT_S", "SweepResult", "Sweeper"]

log = logging.getLogger(__name__)

FOLLOW_LIMIT_S = 24 * 3600
_BATCH = 100


@dataclass
class SweepResult:
    republished: list[str] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)
    relisted: int = 0
    given_up: list[str] = field(default_factory=list)


class Sweeper:
    """Runs the four housekeeping steps; safe to run in several processes at once."""

    def __init__(
        self,
        client: redis.Redis,
        keys: DiscoveryKeys,
        registry: FileRegistry,
        correlator: Correlator,
        settler: Settler,
        outbox: Outbox,
        publisher: Publisher,
        lookups: RoomLookups,
        ops: OpsLog,
        enqueue: Enqueue,
        *,
        await_lease_ms: int,
        check_every_ms: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.keys = keys
        self.registry = registry
        self.correlator = correlator
        self.settler = settler
        self.outbox = outbox
        self.publisher = publisher
        self.lookups = lookups
        self.ops = ops
        self.enqueue = enqueue
        self.await_lease_ms = await_lease_ms
        self.check_every_ms = check_every_ms
        self.clock = clock
        self._lease = scripts_for(client, "worker.discovery.lua").lease_due

    def run(self) -> SweepResult:
        result = SweepResult()
        for fid in self.outbox.due(_BATCH):
            self.enqueue("discovery.publish", [fid], 0.0)
            result.republished.append(fid)
        result.delivered.extend(self.deliver_due_waits())
        self._checks(result)
        try:
            self.publisher.declare()
            self.publisher.trim_audit()
        except (PublishFailed, redis.RedisError) as exc:
            log.warning("downstream housekeeping failed: %s", exc)
        return result

    def deliver_due_waits(self) -> list[str]:
        """Deliver the waiting files whose wait is over (a callback's grace, a room's look-ups):
        the sweep does it before each poll, and every discovery worker's resume loop every
        second, so a wait ends at its deadline rather than at the next poll."""
        return [
            fid
            for fid in self._due(self.keys.awaiting, self.await_lease_ms, self._now_ms())
            if self._deliver_overdue_wait(fid)
        ]

    def _due(self, key: str, lease_ms: int, now_ms: int) -> list[str]:
        return [str(m) for m in self._lease(keys=[key], args=[now_ms, lease_ms, _BATCH])]

    def _deliver_overdue_wait(self, fid: str) -> bool:
        record = self.registry.get(fid)
        if not record or not is_final(record):
            self.client.zrem(self.keys.awaiting, fid)
            return False
        outcome = self.settler.settle(fid, record, record.get("final_source", "poll"), give_up=True)
        return outcome == "delivered"

    def _checks(self, result: SweepResult) -> None:
        now = self._now_ms()
        relist: list[int] = []
        for fid in self._due(self.keys.checks, self.check_every_ms, now):
            record = self.registry.get(fid)
            if not record or is_final(record):
                self.registry.stop_following(fid)
                continue
            first_seen = int(record.get("first_seen_ms") or now)
            if now - first_seen > FOLLOW_LIMIT_S * 1000:
                self.registry.stop_following(fid)
                self.ops.error(
                    "follow-limit",
                    f"file still has status {record.get('status')} after {FOLLOW_LIMIT_S}s",
                    url=record.get("download_url", ""),
                )
                result.given_up.append(fid)
                continue
            upload = int(record.get("upload_ms") or first_seen)
            correlation = self.correlator.correlate(record)
            room = record.get("room_id") or (
                correlation.room_id if correlation.kind == "unique" else None
            )
            if room:
                self.ops.incr("overdue_lookups")
                self.lookups.request(room, upload - LOOKUP_PAD_MS, upload + LOOKUP_PAD_MS)
                result.lookups.append(room)
            else:
                relist.append(upload)
        if relist:
            # One narrow re-list for every overdue file whose room we cannot name.
            self.enqueue(
                "discovery.relist", [min(relist) - LOOKUP_PAD_MS, max(relist) + LOOKUP_PAD_MS], 0.0
            )
            result.relisted = len(relist)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

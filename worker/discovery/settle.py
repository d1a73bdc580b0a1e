"""What happens to a file after each sighting: follow it, wait for its room, or deliver it.

* Not final (status 0/1): followed; the poll re-lists its window until it is final.
* Final, correlation ambiguous: the candidate rooms are looked up (one look-up per room, low
  priority) until the look-ups name its room, or every candidate was looked up and none had
  it, or the look-up deadline passed.
* Final without its callback (found by poll or look-up): waits until ``callback_grace`` after it
  became final (as bounded in :mod:`worker.discovery.grace`: from when we first saw it final,
  or earlier for a file uploaded long ago) for the callback, the only source of ``type``,
  ``file_name``, ``user_id`` and ``media_type`` (and the room of a room this product never
  started); then delivered with what is known. The callback, when it comes, delivers it.
* Final with its callback, or its wait over: delivered now.

Every wait is a member of ``await`` scored by its deadline; the sweep delivers what is overdue.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import redis

from worker.discovery.correlate import Correlator
from worker.discovery.fanout import FanOut
from worker.discovery.grace import callback_deadline_ms
from worker.discovery.keys import DiscoveryKeys
from worker.discovery.lookups import RoomLookups
from worker.discovery.message import build_message
from worker.discovery.ops import OpsLog
from worker.discovery.record import Observation, has_callback, is_final
from worker.discovery.registry import FileRegistry

__all__ = ["LOOKUP_PAD_MS", "Enqueue", "Settler"]

log = logging.getLogger(__name__)

#: Send a task: ``enqueue(name, args, countdown_s)``.
Enqueue = Callable[[str, list[Any], float], None]

#: A room look-up covers the file's upload time this much on each side.
LOOKUP_PAD_MS = 1000


class Settler:
    """Decides and carries out the next step for a sighted file."""

    def __init__(
        self,
        client: redis.Redis,
        keys: DiscoveryKeys,
        registry: FileRegistry,
        correlator: Correlator,
        fanout: FanOut,
        lookups: RoomLookups,
        ops: OpsLog,
        *,
        callback_grace_ms: int,
        lookup_deadline_ms: int,
        transcode_bound_ms: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.keys = keys
        self.registry = registry
        self.correlator = correlator
        self.fanout = fanout
        self.lookups = lookups
        self.ops = ops
        self.callback_grace_ms = callback_grace_ms
        self.lookup_deadline_ms = lookup_deadline_ms
        self.transcode_bound_ms = transcode_bound_ms
        self.clock = clock

    def sighted(self, obs: Observation) -> str:
        """Record a sighting and act on it; returns what happened (for logs and tests)."""
        sighting = self.registry.observe(obs)
        if not is_final(sighting.record):
            return "following"
        return self.settle(sighting.fid, sighting.record, obs.source, now_ms=obs.seen_ms)

    def settle(
        self,
        fid: str,
        record: dict[str, str],
        source: str,
        *,
        give_up: bool = False,
        now_ms: int | None = None,
    ) -> str:
        """Deliver a final file now, or arrange to deliver it once its room and callback are in.

        ``give_up``: deliver with whatever is known (the wait for a room or callback is over).
        ``now_ms``: when the sighting that led here was made (default: the clock, now).
        """
        if self.client.exists(self.keys.outbox(fid)):
            self._stop_waiting(fid)
            return "duplicate"
        now = now_ms or self._now_ms()
        correlation = self.correlator.correlate(record)
        looked_up = set(FileRegistry.json_list(record, "looked_up"))
        remaining = [room for room in correlation.candidates if room not in looked_up]
        if not give_up and correlation.kind == "ambiguous" and remaining:
            self._request_lookups(fid, record, remaining)
            self.client.zadd(self.keys.awaiting, {fid: now + self.lookup_deadline_ms}, nx=True)
            return "awaiting-lookup"
        callback_deadline = callback_deadline_ms(
            record,
            grace_ms=self.callback_grace_ms,
            transcode_ms=self.transcode_bound_ms,
            now_ms=now,
        )
        if not give_up and not has_callback(record) and now < callback_deadline:
            # lt: a deadline only ever moves earlier (a look-up wait's later one gives way to the
            # grace's), so repeated sightings never extend the wait.
            self.client.zadd(self.keys.awaiting, {fid: callback_deadline}, lt=True)
            return "awaiting-callback"
        body = build_message(
            record,
            message_id=fid,
            source=source,
            discovered_at_ms=now,
            room_id=correlation.room_id,
            booking_ids=correlation.booking_ids,
        )
        won = self.fanout.deliver(fid, body, source)
        self._stop_waiting(fid)
        if won:
            self.ops.incr(f"delivered_{source}")
            if body["room_id"] is None:
                self.ops.incr("delivered_without_room")
        return "delivered" if won else "duplicate"

    def lookup_done(self, room_id: str, fid: str) -> str:
        """``room_id`` was looked up over this file's upload time; settle the file again."""
        record = self.registry.get(fid)
        if not record or not is_final(record):
            return "gone"
        looked_up = FileRegistry.json_list(record, "looked_up")
        if room_id not in looked_up:
            looked_up.append(room_id)
            self.registry.set_fields(fid, {"looked_up": json.dumps(sorted(looked_up))})
            record["looked_up"] = json.dumps(sorted(looked_up))
        return self.settle(fid, record, record.get("final_source", "poll"))

    def _request_lookups(self, fid: str, record: dict[str, str], rooms: list[str]) -> None:
        upload = int(record.get("upload_ms") or record.get("first_seen_ms") or 0)
        for room in rooms:
            self.lookups.wait_for(room, fid)
            self.lookups.request(room, upload - LOOKUP_PAD_MS, upload + LOOKUP_PAD_MS)

    def _stop_waiting(self, fid: str) -> None:
        self.client.zrem(self.keys.awaiting, fid)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

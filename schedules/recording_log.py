"""The log of recordings this product made: one session per vendor recording of a room.

Lifecycle writes it when the vendor confirms a start or a stop; discovery reads it to tie a
time-listed file (which carries no room) to the room and bookings it came from.

Keys (under the configured prefix):
- ``reclog:s:<session_id>`` hash: room_id, started_at, stopped_at ("" while recording),
  booking_ids (JSON list), user_data.
- ``reclog:by_start`` zset: session_id scored by started_at (epoch seconds).
- ``reclog:room:<room_id>`` zset: the room's session ids scored by started_at.
- ``reclog:open:<room_id>`` string: the session id of the room's running recording.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis

__all__ = ["RecordingLog", "RecordingSession"]

RETENTION_S = 30 * 24 * 3600
MAX_SESSION_S = 24 * 3600


@dataclass(frozen=True)
class RecordingSession:
    """One vendor recording of one room, from start to stop."""

    session_id: str
    room_id: str
    started_at: float
    stopped_at: float | None
    booking_ids: tuple[str, ...] = field(default_factory=tuple)
    user_data: str | None = None

    def overlaps(self, start_s: float, end_s: float, slack_s: float = 0.0) -> bool:
        stop = self.stopped_at if self.stopped_at is not None else float("inf")
        return self.started_at - slack_s <= end_s and stop + slack_s >= start_s


class RecordingLog:
    """Reads and writes recording sessions under ``prefix``."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.r = client
        self.prefix = prefix

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, "reclog", *parts))

    def started(
        self,
        room_id: str,
        started_at: float,
        booking_ids: Iterable[str] = (),
        user_data: str | None = None,
    ) -> str:
        """Note that the vendor started recording ``room_id``; idempotent while it stays open."""
        open_key = self._key("open", room_id)
        session_id = f"{room_id}:{int(started_at * 1000)}"
        if not self.r.set(open_key, session_id, nx=True):
            return str(self.r.get(open_key))
        session_key = self._key("s", session_id)
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(
            session_key,
            mapping={
                "room_id": room_id,
                "started_at": repr(started_at),
                "stopped_at": "",
                "booking_ids": json.dumps(sorted(set(booking_ids))),
                "user_data": user_data or "",
            },
        )
        pipe.expire(session_key, RETENTION_S)
        pipe.zadd(self._key("by_start"), {session_id: started_at})
        pipe.zadd(self._key("room", room_id), {session_id: started_at})
        pipe.execute()
        return session_id

    def add_bookings(self, room_id: str, booking_ids: Iterable[str]) -> None:
        """Record more bookings sharing the room's running recording."""
        session_id = self.r.get(self._key("open", room_id))
        if not session_id:
            return
        session_key = self._key("s", str(session_id))
        current = json.loads(self.r.hget(session_key, "booking_ids") or "[]")
        merged = sorted(set(current) | set(booking_ids))
        self.r.hset(session_key, "booking_ids", json.dumps(merged))

    def stopped(self, room_id: str, stopped_at: float) -> str | None:
        """Close the room's running session; returns its id (None when none was open)."""
        open_key = self._key("open", room_id)
        session_id = self.r.get(open_key)
        if not session_id:
            return None
        self.r.hset(self._key("s", str(session_id)), "stopped_at", repr(stopped_at))
        self.r.delete(open_key)
        return str(session_id)

    def get(self, session_id: str) -> RecordingSession | None:
        data = self.r.hgetall(self._key("s", session_id))
        if not data:
            return None
        return RecordingSession(
            session_id=session_id,
            room_id=data["room_id"],
            started_at=float(data["started_at"]),
            stopped_at=float(data["stopped_at"]) if data.get("stopped_at") else None,
            booking_ids=tuple(json.loads(data.get("booking_ids") or "[]")),
            user_data=data.get("user_data") or None,
        )

    def overlapping(
        self, start_s: float, end_s: float, slack_s: float = 5.0
    ) -> list[RecordingSession]:
        """Sessions whose recording overlaps ``[start_s, end_s]`` (with ``slack_s`` each side)."""
        ids = self.r.zrangebyscore(
            self._key("by_start"), start_s - MAX_SESSION_S - slack_s, end_s + slack_s
        )
        sessions = [s for s in (self.get(str(i)) for i in ids) if s is not None]
        return [s for s in sessions if s.overlaps(start_s, end_s, slack_s)]

    def for_room(self, room_id: str) -> list[RecordingSession]:
        """Every logged session of ``room_id``, oldest first."""
        ids = self.r.zrange(self._key("room", room_id), 0, -1)
        return [s for s in (self.get(str(i)) for i in ids) if s is not None]

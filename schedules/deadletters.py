"""The dead-letter store: events and bookings the lifecycle gave up on, for an operator to see.

An entry is a JSON object kept in ``lc:dl:entries`` (id -> JSON) and indexed by creation time in
``lc:dl:index``. Fields: ``id``, ``created_at``, ``task`` (the task that can replay it, e.g.
``recordings.schedule``), ``kwargs`` (its keyword arguments), ``error`` (error class or kind),
``code`` and ``message`` (the vendor's, for vendor failures), ``booking_id``, ``room_id``,
``replayed_at`` and ``replay`` (what the last replay gave). The Lua scripts that fail a booking
write entries of the same shape (``dead_letter`` in ``worker/lua/lib.lua``), so there is one
store.

Nothing secret goes in: kwargs are booking fields, messages are vendor replies (no vod token is
ever part of a start/stop call).
"""

from __future__ import annotations

import json
from typing import Any

import redis

from schedules.keys import LifecycleKeys

__all__ = ["DeadLetterStore"]


class DeadLetterStore:
    """Add, list, read and mark dead letters under one key prefix."""

    def __init__(self, client: redis.Redis, keys: LifecycleKeys) -> None:
        self.r = client
        self.keys = keys

    def add(
        self,
        *,
        task: str,
        kwargs: dict[str, Any],
        error: str,
        message: str,
        now: float,
        code: str | int | None = None,
        booking_id: str | None = None,
        room_id: str | None = None,
    ) -> str:
        """Store one entry; returns its id."""
        entry_id = str(self.r.incr(self.keys.dl_seq))
        entry = {
            "id": entry_id,
            "created_at": now,
            "task": task,
            "kwargs": kwargs,
            "error": error,
            "code": code,
            "message": message,
            "booking_id": booking_id,
            "room_id": room_id,
            "replayed_at": None,
            "replay": None,
        }
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.keys.dl_entries, entry_id, json.dumps(entry, default=str))
        pipe.zadd(self.keys.dl_index, {entry_id: now})
        pipe.execute()
        return entry_id

    def get(self, entry_id: str) -> dict[str, Any] | None:
        raw = self.r.hget(self.keys.dl_entries, str(entry_id))
        return _decode(raw) if raw else None

    def list(self, limit: int = 100, *, booking_id: str | None = None) -> list[dict[str, Any]]:
        """Newest first; ``booking_id`` filters to one booking's entries."""
        ids = self.r.zrevrange(self.keys.dl_index, 0, -1 if booking_id else max(limit, 1) - 1)
        if not ids:
            return []
        raws = self.r.hmget(self.keys.dl_entries, ids)
        entries = [_decode(raw) for raw in raws if raw]
        if booking_id is not None:
            entries = [e for e in entries if e.get("booking_id") == booking_id]
        return entries[:limit]

    def count(self) -> int:
        return int(self.r.zcard(self.keys.dl_index))

    def mark_replayed(self, entry_id: str, *, now: float, outcome: dict[str, Any]) -> None:
        """Note when the entry was replayed and what that gave (kept: the history stays)."""
        entry = self.get(entry_id)
        if entry is None:
            raise KeyError(entry_id)
        entry["replayed_at"] = now
        entry["replay"] = outcome
        self.r.hset(self.keys.dl_entries, str(entry_id), json.dumps(entry, default=str))

    def delete(self, entry_id: str) -> bool:
        pipe = self.r.pipeline(transaction=True)
        pipe.hdel(self.keys.dl_entries, str(entry_id))
        pipe.zrem(self.keys.dl_index, str(entry_id))
        return bool(pipe.execute()[0])


def _decode(raw: str) -> dict[str, Any]:
    entry = json.loads(raw)
    # cjson (in the Lua scripts) writes an empty Lua table as {} and JSON null as null.
    if entry.get("kwargs") in ([], None):
        entry["kwargs"] = {}
    return entry

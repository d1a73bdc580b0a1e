"""Which rooms' files went out, by start time: how the missing-file judge knows a recorded
session has its file without asking the vendor (``roomfiles:<room>``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import redis

from worker.discovery.keys import DiscoveryKeys

__all__ = ["ROOM_FILES_TTL_S", "has_file", "note_delivered"]

#: Longer than the recording log keeps a session, so every session still judged can see it.
ROOM_FILES_TTL_S = 31 * 24 * 3600


def _epoch(iso_seconds: Any) -> int | None:
    if not isinstance(iso_seconds, str):
        return None
    try:
        moment = datetime.strptime(iso_seconds, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None
    return int(moment.replace(tzinfo=UTC).timestamp())


def note_delivered(client: redis.Redis, keys: DiscoveryKeys, body: Mapping[str, Any]) -> None:
    """Remember that the file message ``body`` (``recording.v1``) goes out for its room."""
    room = body.get("room_id")
    start = _epoch(body.get("start_time"))
    if not room or start is None:
        return
    key = keys.room_files(str(room))
    pipe = client.pipeline(transaction=True)
    pipe.zadd(key, {str(body["message_id"]): start})
    pipe.expire(key, ROOM_FILES_TTL_S)
    pipe.execute()


def has_file(
    client: redis.Redis, keys: DiscoveryKeys, room_id: str, lo_s: float, hi_s: float
) -> bool:
    """Whether a file of ``room_id`` starting in ``[lo_s, hi_s]`` went out."""
    return bool(client.zcount(keys.room_files(room_id), lo_s, hi_s))

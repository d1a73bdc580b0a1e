"""A booking as the earlier storage layout left it (before the compact layout), for the
migration tests: the long-field ``lc:booking:<id>`` hash with its ``request``, the
``lc:bhist:<id>`` history and its pending start in ``due``."""

from __future__ import annotations

import json
from typing import Any

from schedules.context import Lifecycle
from schedules.keys import hash_tag


def store_old_layout(
    ctx: Lifecycle, booking_id: str, start: float, end: float, *, kwargs: dict[str, Any]
) -> None:
    """A pending booking exactly as the earlier layout's apply_event.lua left it."""
    tag = hash_tag(ctx.settings.redis_key_prefix)
    action = f"start:{booking_id}:1"
    ctx.redis.hset(f"{tag}:lc:booking:{booking_id}", mapping={
        "booking_id": booking_id, "room_id": "r-old", "start_at": repr(start),
        "end_at": repr(end), "start_due": repr(start), "stop_due": repr(end),
        "params": '{"name_rule":null,"path":null,"room_type":null,"user_data":{"n":1}}',
        "request": json.dumps({"task": "recordings.schedule", "kwargs": kwargs}),
        "changed_at": "2000000000", "reason": "", "code": "", "message": "",
        "created_at": "2000000000", "updated_at": "2000000000.25", "seq": "1", "next": action,
        "next_at": str(int(start)), "state": "scheduled", "ending": "", "final": "",
        "recorded": "", "rec_started_at": "", "rec_stopped_at": "", "tried": "",
    })  # fmt: skip
    ctx.redis.rpush(f"{tag}:lc:bhist:{booking_id}", json.dumps({
        "event": "schedule", "source": "recordings.schedule", "verdict": "applied", "from": "",
        "state": "scheduled", "next": action, "window": [start, end], "room_id": "r-old",
        "detail": "start pending", "at": 2_000_000_000, "updated_at": 2_000_000_000.25,
    }))  # fmt: skip
    ctx.redis.zadd(ctx.keys.due, {action: start})

"""Reading a room's history (the ``rhist`` list) the way the Lua scripts write it."""

from __future__ import annotations

import json
from typing import Any

from schedules.context import Lifecycle


def room_history(ctx: Lifecycle, room_id: str, limit: int = 200) -> list[dict[str, Any]]:
    """The newest ``limit`` entries of ``room_id``'s history, oldest first."""
    return [json.loads(e) for e in ctx.redis.lrange(ctx.keys.rhist(room_id), -limit, -1)]

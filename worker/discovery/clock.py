"""Time from Redis: every process and host reads the same clock (the server's ``TIME``)."""

from __future__ import annotations

import redis

__all__ = ["redis_now_ms"]


def redis_now_ms(client: redis.Redis) -> int:
    """The Redis server's time in epoch milliseconds."""
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000

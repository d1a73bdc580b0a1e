"""Redis connections and Lua script loading, shared by every component."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import redis
from redis.commands.core import Script

__all__ = ["get_redis", "load_script", "redis_from_url"]


def redis_from_url(url: str) -> redis.Redis:
    """A decoding client with short socket timeouts (a hung Redis must not hang a worker)."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=5,
        socket_timeout=10,
        health_check_interval=30,
    )


@lru_cache(maxsize=8)
def get_redis(url: str | None = None) -> redis.Redis:
    """The process-wide client for ``url`` (default: ``REDIS_URL``)."""
    if url is None:
        from config.settings import get_settings

        url = get_settings().redis_url
    return redis_from_url(url)


def load_script(client: redis.Redis, package: str, filename: str) -> Script:
    """Register the Lua file ``filename`` of ``package`` on ``client`` (EVALSHA, loaded once)."""
    source = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    return client.register_script(source)

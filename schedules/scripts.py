"""The lifecycle's Lua scripts, registered once per Redis client."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import redis
from redis.commands.core import Script

from schedules.redis import load_script

__all__ = ["LifecycleScripts", "scripts_for"]

_PACKAGE = "schedules.lua"


@dataclass(frozen=True)
class LifecycleScripts:
    """One registered :class:`Script` per file in ``schedules/lua``."""

    claim_due: Script
    apply_event: Script
    apply_action: Script
    begin_call: Script
    finish_call: Script

    @classmethod
    def load(cls, client: redis.Redis) -> LifecycleScripts:
        return cls(
            **{name: load_script(client, _PACKAGE, f"{name}.lua") for name in cls.__annotations__}
        )


_cache: dict[int, tuple[redis.Redis, LifecycleScripts]] = {}
_lock = threading.Lock()


def scripts_for(client: redis.Redis) -> LifecycleScripts:
    """The scripts registered on ``client`` (read from disk once per client)."""
    with _lock:
        cached = _cache.get(id(client))
        if cached is None or cached[0] is not client:
            cached = (client, LifecycleScripts.load(client))
            _cache[id(client)] = cached
        return cached[1]

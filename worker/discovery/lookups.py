"""Room look-up requests: at most one queued per room, and the files waiting on each."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from worker.discovery.keys import DiscoveryKeys
from worker.redis import scripts_for

__all__ = ["LookupWindow", "RoomLookups"]


@dataclass(frozen=True)
class LookupWindow:
    """The upload window (epoch ms) a room look-up must cover, and its version."""

    beg_ms: int
    end_ms: int
    version: int


class RoomLookups:
    """``lookup:<room>`` requests and ``await:room:<room>`` waiters."""

    def __init__(self, client: redis.Redis, keys: DiscoveryKeys, *, ttl_s: float) -> None:
        self.client = client
        self.keys = keys
        self.ttl_s = max(1, int(ttl_s))
        self._request = scripts_for(client, "worker.discovery.lua").lookup_request

    def request(self, room_id: str, beg_ms: int, end_ms: int) -> bool:
        """Ask for a look-up of ``room_id``; True when the caller must enqueue the task."""
        created = self._request(keys=[self.keys.lookup(room_id)], args=[beg_ms, end_ms, self.ttl_s])
        return bool(int(created))

    def window(self, room_id: str) -> LookupWindow | None:
        data = self.client.hgetall(self.keys.lookup(room_id))
        if not data:
            return None
        return LookupWindow(int(data["beg_ms"]), int(data["end_ms"]), int(data["version"]))

    def finish(self, room_id: str, version: int | None) -> LookupWindow | None:
        """Drop the request served at ``version``; the newer window if it widened meanwhile."""
        key = self.keys.lookup(room_id)
        with self.client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)
                current = pipe.hgetall(key)
                if current and version is not None and int(current["version"]) != version:
                    pipe.unwatch()
                    return LookupWindow(
                        int(current["beg_ms"]), int(current["end_ms"]), int(current["version"])
                    )
                pipe.multi()
                pipe.delete(key)
                pipe.execute()
            except redis.WatchError:
                return self.window(room_id)
        return None

    def wait_for(self, room_id: str, fid: str) -> None:
        """Remember that ``fid`` waits for the look-up of ``room_id``."""
        key = self.keys.awaiting_room(room_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.sadd(key, fid)
        pipe.expire(key, self.ttl_s)
        pipe.execute()

    def take_waiting(self, room_id: str) -> list[str]:
        """Every file waiting for ``room_id`` (removed from the waiting set)."""
        key = self.keys.awaiting_room(room_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.smembers(key)
        pipe.delete(key)
        members, _ = pipe.execute()
        return sorted(str(m) for m in members)

"""Acknowledged callbacks, kept in Redis from before the 2xx until a worker has handled them.

The web process stores a validated callback here, then enqueues ``discovery.callback``; the
task removes the entry once the file is settled. An entry the task never finished (the enqueue
failed, the worker died) is drained by the next poll once it is older than a grace period, so an
acknowledged callback is never lost. Handling twice is harmless: the settler and the outbox make
one message per file.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import redis

from worker.discovery.keys import DiscoveryKeys

__all__ = ["CallbackIntake", "intake_id"]


def intake_id(payload: dict[str, Any]) -> str:
    """The id of a callback body: identical callbacks share one entry (the vendor's retries)."""
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class CallbackIntake:
    """``intake`` (id -> JSON body) and ``intake:at`` (id by receipt ms) under one hash tag."""

    def __init__(
        self, client: redis.Redis, keys: DiscoveryKeys, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.keys = keys
        self.clock = clock

    def store(self, payload: dict[str, Any]) -> str:
        """Keep ``payload`` (raises redis errors: then nothing may be acknowledged)."""
        entry = intake_id(payload)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.intake, entry, json.dumps(payload, ensure_ascii=False))
        # NX: a repeated callback keeps its first time, so it is not starved of the drain.
        pipe.zadd(self.keys.intake_at, {entry: int(self.clock() * 1000)}, nx=True)
        pipe.execute()
        return entry

    def done(self, payload: dict[str, Any]) -> None:
        """Forget ``payload``'s entry (it is handled)."""
        entry = intake_id(payload)
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(self.keys.intake, entry)
        pipe.zrem(self.keys.intake_at, entry)
        pipe.execute()

    def stale(self, older_than_s: float, limit: int = 100) -> list[dict[str, Any]]:
        """Bodies received more than ``older_than_s`` ago and still not handled, oldest first."""
        cutoff = int((self.clock() - older_than_s) * 1000)
        ids = self.client.zrangebyscore(self.keys.intake_at, 0, cutoff, start=0, num=limit)
        if not ids:
            return []
        bodies = []
        for entry, raw in zip(ids, self.client.hmget(self.keys.intake, ids), strict=True):
            if raw is None:  # handled between the two reads
                self.client.zrem(self.keys.intake_at, entry)
                continue
            bodies.append(json.loads(raw))
        return bodies

    def count(self) -> int:
        return int(self.client.zcard(self.keys.intake_at))

"""What an operator can see in Redis: rejected callbacks, errors, and counters.

``rejects`` and ``errors`` are capped lists of JSON lines, newest first::

    redis-cli LRANGE '{<prefix>}:disc:rejects' 0 20

Nothing secret goes in: callers pass clipped bodies, and :meth:`OpsLog.scrub` removes the
callback token should a sender have put it in a body.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis

from worker.discovery.keys import DiscoveryKeys

__all__ = ["BODY_CLIP", "LIST_MAX", "OpsLog"]

log = logging.getLogger(__name__)

LIST_MAX = 1000
BODY_CLIP = 500


class OpsLog:
    """Capped operator lists and counters under ``{<prefix>}:disc:``; ``clock`` (epoch s)
    stamps each entry's ``at_ms``."""

    def __init__(
        self,
        client: redis.Redis,
        keys: DiscoveryKeys,
        secrets: Iterable[str] = (),
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.keys = keys
        self.secrets = [s for s in secrets if s]
        self.clock = clock

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def clip(self, body: bytes | str) -> str:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        text = self.scrub(text)
        return text if len(text) <= BODY_CLIP else text[:BODY_CLIP] + "…"

    def reject(self, reason: str, status: int, body: bytes | str, **context: Any) -> None:
        """Record a rejected callback (reason, HTTP status, clipped body)."""
        self._push(
            self.keys.rejects,
            {"reason": self.scrub(reason), "status": status, "body": self.clip(body), **context},
        )
        self.incr("callback_rejected")

    def error(self, kind: str, message: str, **context: Any) -> None:
        """Record a problem that needs an operator (bad input, permanent vendor errors)."""
        self._push(self.keys.errors, {"kind": kind, "message": self.scrub(message), **context})

    def incr(self, name: str, amount: int = 1) -> None:
        try:
            self.client.hincrby(self.keys.stats, name, amount)
        except redis.RedisError:
            log.warning("could not count %s", name)

    def stats(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.client.hgetall(self.keys.stats).items()}

    def entries(self, which: str, count: int = 20) -> list[dict[str, Any]]:
        key = self.keys.rejects if which == "rejects" else self.keys.errors
        return [json.loads(x) for x in self.client.lrange(key, 0, count - 1)]

    def _push(self, key: str, entry: dict[str, Any]) -> None:
        try:
            entry = {"at_ms": int(self.clock() * 1000), **entry}
            pipe = self.client.pipeline(transaction=True)
            pipe.lpush(key, json.dumps(entry, ensure_ascii=False, default=str))
            pipe.ltrim(key, 0, LIST_MAX - 1)
            pipe.execute()
        except redis.RedisError:
            # The log line below is the record then; never fail the caller over bookkeeping.
            log.warning("could not record %s entry in Redis", key.rsplit(":", 1)[-1])

"""Everything the lifecycle functions need, built once per process from Settings."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import redis

from config.settings import Settings, get_settings
from schedules.deadletters import DeadLetterStore
from schedules.keys import LifecycleKeys
from schedules.leases import LeaseKeeper
from schedules.notes import ReplyNotes
from schedules.recording_log import RecordingLog
from schedules.state import StateReader
from schedules.store import LifecycleStore
from schedules.vendor import ResultStrings
from worker.anyrtc import AnyRTCClient
from worker.redis import get_redis

__all__ = ["Lifecycle", "get_lifecycle"]


@dataclass
class Lifecycle:
    """Redis stores, the vendor client (built on first use) and the clock, for one prefix.

    ``clock`` is the only source of "now" for every lifecycle decision and every Lua script
    (passed as ARGV); tests inject a fake one (and a matching ``sleep``).
    """

    settings: Settings
    redis: redis.Redis
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    client_factory: Callable[[Settings], AnyRTCClient] = AnyRTCClient.from_settings
    _client: AnyRTCClient | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.keys = LifecycleKeys(self.settings.redis_key_prefix)
        self.store = LifecycleStore(self.redis, self.keys)
        self.reader = StateReader(self.redis, self.keys)
        self.deadletters = DeadLetterStore(self.redis, self.keys)
        self.recording_log = RecordingLog(self.redis, self.settings.redis_key_prefix)
        # Vendor replies noted for a takeover, written by one thread (schedules/notes.py).
        self.reply_notes = ReplyNotes(self.redis)
        self.results = ResultStrings.from_text(
            self.settings.anyrtc_already_recording_results,
            self.settings.anyrtc_not_recording_results,
        )
        # The heartbeat of what this process holds; its thread runs in lifecycle workers only.
        self.leases = LeaseKeeper(self.store, self.settings.lease_s, clock=lambda: self.clock())

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        redis_client: redis.Redis | None = None,
    ) -> Lifecycle:
        settings = settings or get_settings()
        return cls(settings, redis_client or get_redis(settings.redis_url), clock=clock)

    @property
    def client(self) -> AnyRTCClient:
        """The vendor client (shared by all threads; requests sessions are thread-safe enough
        for independent POSTs through one pooled adapter)."""
        with self._lock:
            if self._client is None:
                self._client = self.client_factory(self.settings)
            return self._client

    @property
    def lease_s(self) -> float:
        return self.settings.lease_s

    @staticmethod
    def new_token() -> str:
        """A unique id for one vendor call attempt."""
        return uuid.uuid4().hex


@lru_cache(maxsize=1)
def get_lifecycle() -> Lifecycle:
    """The process-wide Lifecycle (what the Celery tasks use)."""
    return Lifecycle.from_settings()

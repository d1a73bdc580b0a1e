"""The time poll: getVodListByTime from a watermark, in stages, resumable, one at a time.

The stages and the cursor are in :mod:`worker.discovery.poll_stages`; this module walks them:
it takes the poll lock (a short lease its process's heartbeat renews, see
:mod:`worker.discovery.heartbeat`; a dead poller's poll is resumed by
:mod:`worker.discovery.resume_loop`), saves the cursor before each call, hands every listed file
to the settler, and moves the watermark when a run completes. When the budget denies a call,
the poll records its task id in ``poll:retry`` and is re-queued with the limiter's wait; polls
sent by beat meanwhile see the marker and leave the work to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import redis
from redis.exceptions import LockError

from worker.anyrtc.client import AnyRTCClient
from worker.discovery.heartbeat import Heartbeat
from worker.discovery.keys import DiscoveryKeys, file_key_id
from worker.discovery.ops import OpsLog
from worker.discovery.poll_stages import PollCursor, next_stage, plan_follow_windows
from worker.discovery.record import Observation
from worker.discovery.registry import FileRegistry
from worker.discovery.settle import Settler
from worker.errors import AnyRTCError, BudgetExhausted, RateLimited

__all__ = ["PollResult", "Poller"]

log = logging.getLogger(__name__)

# ``seen`` keeps entries this long past the oldest window any poll can list.
_SEEN_SLACK_MS = 3600 * 1000


@dataclass
class PollResult:
    """How a poll run ended. ``retry_after`` is set when it must run again (seconds)."""

    status: str  # done | retry | skipped | failed
    pages: int = 0
    files: int = 0
    retry_after: float | None = None
    error: AnyRTCError | None = None
    reason: str = ""
    stages: list[str] = field(default_factory=list)


class Poller:
    """Runs time polls; safe to call from any number of processes at once."""

    def __init__(
        self,
        client: redis.Redis,
        keys: DiscoveryKeys,
        vendor: AnyRTCClient,
        registry: FileRegistry,
        settler: Settler,
        ops: OpsLog,
        *,
        overlap_ms: int,
        page_max: int,
        expected_transcode_ms: int,
        window_s: float,
        lock_ttl_s: float,
        max_pages_per_run: int,
        retry_marker_slack_s: float,
        heartbeat: Heartbeat,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.keys = keys
        self.vendor = vendor
        self.registry = registry
        self.settler = settler
        self.ops = ops
        self.overlap_ms = overlap_ms
        self.page_max = page_max
        self.expected_transcode_ms = expected_transcode_ms
        self.window_s = window_s
        self.lock_ttl_s = lock_ttl_s
        self.max_pages_per_run = max_pages_per_run
        self.retry_marker_slack_s = retry_marker_slack_s
        self.heartbeat = heartbeat
        self.clock = clock

    def run(self, task_id: str) -> PollResult:
        """One poll run on behalf of task ``task_id``."""
        marker = self.client.get(self.keys.poll_retry)
        if marker and marker != task_id:
            return PollResult("skipped", reason="a retry of the poll is already queued")
        # A short expiry kept alive by this process's heartbeat: a dead poller's lock is free
        # within one lease. Not thread-local: the heartbeat thread renews it.
        lock = self.client.lock(
            self.keys.poll_lock, timeout=self.lock_ttl_s, blocking=False, thread_local=False
        )
        if not lock.acquire():
            return PollResult("skipped", reason="another poll is running")
        try:
            # The mark outlives a crash (the lock does not): see poll_orphaned.lua.
            self.client.set(self.keys.poll_running, task_id)
            with self.heartbeat.holding_lock(lock):
                return self._run(task_id, lock)
        except LockError:
            # Our lock expired mid-poll (heartbeats missed); whoever holds it now carries on
            # from the saved cursor.
            log.warning("poll lock lost mid-poll; leaving the rest to the current holder")
            return PollResult("skipped", reason="lost the poll lock")
        finally:
            try:
                if lock.owned():
                    self.client.delete(self.keys.poll_running)
                lock.release()
            except LockError:
                log.warning("poll lock expired before the poll released it")

    def cursor(self) -> PollCursor | None:
        data = self.client.hgetall(self.keys.poll_cursor)
        return PollCursor.from_hash(data) if data else None

    def _new_cursor(self) -> PollCursor:
        now = int(self.clock() * 1000)
        watermark = self.client.get(self.keys.poll_watermark)
        # The first poll ever looks back one overlap; all of it is "fresh" then.
        fresh = max(0, int(watermark) if watermark else now - self.overlap_ms)
        beg = max(0, fresh - self.overlap_ms) if watermark else fresh
        return PollCursor("head", beg, now, fresh)

    def _save(self, cursor: PollCursor) -> None:
        self.client.hset(self.keys.poll_cursor, mapping=cursor.as_hash())

    def _queue_retry(self, task_id: str, after_s: float) -> None:
        ttl_ms = int((after_s + self.retry_marker_slack_s) * 1000) + 1
        self.client.set(self.keys.poll_retry, task_id, px=ttl_ms)

    def _run(self, task_id: str, lock: redis.lock.Lock) -> PollResult:
        cursor = self.cursor() or self._new_cursor()
        result = PollResult("done")
        listed: set[str] = set()
        while cursor.stage != "done":
            if cursor.stage == "follow" and cursor.follow is None:
                cursor = replace(cursor, follow=self._plan_follow(cursor.end_ms, listed))
            self._save(cursor)
            window = cursor.window()
            if window is None:
                cursor = next_stage(cursor, None, self.registry)
                continue
            try:
                page = self.vendor.list_by_time(window[0], window[1], cursor.page, self.page_max)
            except (BudgetExhausted, AnyRTCError) as exc:
                return self._stopped(task_id, result, exc)
            result.pages += 1
            result.stages.append(cursor.stage)
            self.ops.incr("calls_poll")
            seen_ms = int(self.clock() * 1000)
            for file in page.files:
                result.files += 1
                listed.add(file_key_id(file.identity))
                self._sighted(Observation.from_vod(file, "poll", seen_ms))
            lock.reacquire()
            cursor = next_stage(cursor, page, self.registry)
            if cursor.stage != "done" and result.pages >= self.max_pages_per_run:
                self._save(cursor)
                self._queue_retry(task_id, 0.0)
                result.status, result.retry_after = "retry", 0.0
                return result
        pipe = self.client.pipeline(transaction=True)
        if cursor.deferred:
            result.stages.append("deferred")
        else:
            pipe.set(self.keys.poll_watermark, cursor.end_ms)
        pipe.delete(self.keys.poll_cursor)
        pipe.delete(self.keys.poll_retry)
        pipe.execute()
        oldest = cursor.end_ms - self.overlap_ms - self.expected_transcode_ms - _SEEN_SLACK_MS
        self.registry.forget_seen_before(oldest)
        return result

    def _plan_follow(self, now_ms: int, listed: set[str]) -> tuple[tuple[int, int], ...]:
        due = [fid for fid in self.registry.due_follow(now_ms) if fid not in listed]
        uploads = self.registry.upload_times(due)
        overdue = [f for f, u in uploads.items() if u + self.expected_transcode_ms <= now_ms]
        # Overdue files (and any without an upload time to list by) are the sweep's: one check
        # per EXPECTED_TRANSCODE_S.
        dropped = overdue + [f for f in due if f not in uploads]
        if dropped:
            self.client.zrem(self.keys.follow, *dropped)
        current = [u for f, u in uploads.items() if f not in overdue]
        return tuple(plan_follow_windows(current, self.registry.seen_between, self.page_max))

    def _stopped(self, task_id: str, result: PollResult, exc: Exception) -> PollResult:
        if isinstance(exc, BudgetExhausted):
            self._queue_retry(task_id, exc.retry_after)
            result.status, result.retry_after = "retry", exc.retry_after
            return result
        assert isinstance(exc, AnyRTCError)
        result.error = exc
        if isinstance(exc, RateLimited):
            self._queue_retry(task_id, self.window_s)
            result.status, result.retry_after = "retry", self.window_s
        elif exc.retryable:
            # Visible to an operator: a page the vendor keeps answering badly shows up here.
            self.ops.error("poll-retry", str(exc), code=str(exc.code))
            self._queue_retry(task_id, self.window_s)
            result.status = "retry"
        else:
            self.client.delete(self.keys.poll_retry)
            self.ops.error("poll", str(exc), code=str(exc.code))
            result.status = "failed"
        return result

    def _sighted(self, obs: Observation) -> None:
        try:
            self.settler.sighted(obs)
        except (redis.ConnectionError, redis.TimeoutError):
            raise  # Redis itself is down: the whole poll retries
        except Exception as exc:
            # One odd file must not stop the poll: the next poll sees it again.
            log.exception("could not process listed file %s", obs.download_url)
            self.ops.error("poll-file", f"{type(exc).__name__}: {exc}", url=obs.download_url)

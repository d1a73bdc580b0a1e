"""The time poll: getVodListByTime from a watermark, in stages, resumable, one at a time.

Each run lists, within the budget:

1. ``head``: page 1 of the window ``[watermark - POLL_OVERLAP_S, now]``. The vendor's ``cnt``
   says how many files the window holds; ``seen`` says how many of them we have listed before.
   Equal (the usual case once things are quiet): nothing new anywhere in the window, and this
   one call was the whole discovery cost of the run.
2. ``fresh``: otherwise every page of ``[watermark, now]``, where new uploads are; but only once
   that region is at least one typical transcode time old. New uploads are not final before
   that, so listing them earlier would only mean listing them again later: the poll ends
   ("deferred") and the watermark stays where it is, so nothing is skipped.
3. ``rest``: if files are still unseen after that, they are late uploads inside the overlap:
   pages 2.. of the whole window.
4. ``follow``: non-final files whose re-list is due (and that this run has not listed yet), in
   windows holding at most ``POLL_PAGE_MAX`` known files each, so most take one page.

The stage, window and page are saved in ``poll:cursor`` before each call, so a poll that stops
halfway (budget, vendor error, crash) resumes at the same page of the same stage. When the
budget denies a call, the poll records its task id in ``poll:retry`` and is re-queued with the
limiter's wait; polls sent by beat meanwhile see the marker and leave the work to it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import redis
from redis.exceptions import LockError

from worker.anyrtc.client import AnyRTCClient
from worker.anyrtc.models import VodPage
from worker.discovery.clock import redis_now_ms
from worker.discovery.keys import DiscoveryKeys, file_key_id
from worker.discovery.ops import OpsLog
from worker.discovery.record import Observation
from worker.discovery.registry import FileRegistry
from worker.discovery.settle import Settler
from worker.errors import AnyRTCError, BudgetExhausted, RateLimited

__all__ = ["PollCursor", "PollResult", "Poller", "plan_follow_windows"]

log = logging.getLogger(__name__)

# Upload windows of re-lists get this much slack each side (vendor ms rounding).
_PAD_MS = 1000
# ``seen`` keeps entries this long past the oldest window any poll can list.
_SEEN_SLACK_MS = 3600 * 1000


@dataclass(frozen=True)
class PollCursor:
    """A poll under way: its stage, windows and the next page (all times epoch ms)."""

    stage: str  # head | fresh | rest | follow
    beg_ms: int
    end_ms: int
    fresh_ms: int
    page: int = 1
    total: int = 0
    follow: tuple[tuple[int, int], ...] | None = None
    segment: int = 0
    deferred: bool = False

    def as_hash(self) -> dict[str, str]:
        return {
            "stage": self.stage,
            "beg_ms": str(self.beg_ms),
            "end_ms": str(self.end_ms),
            "fresh_ms": str(self.fresh_ms),
            "page": str(self.page),
            "total": str(self.total),
            "follow": json.dumps(self.follow) if self.follow is not None else "",
            "segment": str(self.segment),
            "deferred": "1" if self.deferred else "",
        }

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> PollCursor:
        follow = json.loads(data["follow"]) if data.get("follow") else None
        return cls(
            stage=data["stage"],
            beg_ms=int(data["beg_ms"]),
            end_ms=int(data["end_ms"]),
            fresh_ms=int(data["fresh_ms"]),
            page=int(data["page"]),
            total=int(data["total"]),
            follow=tuple((int(b), int(e)) for b, e in follow) if follow is not None else None,
            segment=int(data["segment"]),
            deferred=bool(data.get("deferred")),
        )


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


def plan_follow_windows(
    uploads: list[int], count_between: Callable[[int, int], int], page_max: int
) -> list[tuple[int, int]]:
    """Group upload times into windows of at most ``page_max`` known files each.

    ``count_between(beg, end)`` counts the known files with an upload time in ``[beg, end]``.
    A window only grows while it stays within one page; a lone crowded instant still gets its
    own window (it then takes more than one page).
    """
    windows: list[tuple[int, int]] = []
    for upload in sorted(uploads):
        if windows:
            beg, end = windows[-1]
            if upload <= end:
                continue
            if count_between(beg, upload + _PAD_MS) <= page_max:
                windows[-1] = (beg, upload + _PAD_MS)
                continue
        start = upload - _PAD_MS if not windows else max(upload - _PAD_MS, windows[-1][1] + 1)
        windows.append((start, upload + _PAD_MS))
    return windows


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

    def run(self, task_id: str) -> PollResult:
        """One poll run on behalf of task ``task_id``."""
        marker = self.client.get(self.keys.poll_retry)
        if marker and marker != task_id:
            return PollResult("skipped", reason="a retry of the poll is already queued")
        lock = self.client.lock(self.keys.poll_lock, timeout=self.lock_ttl_s, blocking=False)
        if not lock.acquire():
            return PollResult("skipped", reason="another poll is running")
        try:
            return self._run(task_id, lock)
        except LockError:
            # Our lock expired mid-poll (a very slow call); whoever holds it now carries on
            # from the saved cursor.
            log.warning("poll lock lost mid-poll; leaving the rest to the current holder")
            return PollResult("skipped", reason="lost the poll lock")
        finally:
            try:
                lock.release()
            except LockError:
                log.warning("poll lock expired before the poll released it")

    def cursor(self) -> PollCursor | None:
        data = self.client.hgetall(self.keys.poll_cursor)
        return PollCursor.from_hash(data) if data else None

    def _new_cursor(self) -> PollCursor:
        now = redis_now_ms(self.client)
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
            window = self._window(cursor)
            if window is None:
                cursor = self._next_stage(cursor, None)
                continue
            try:
                page = self.vendor.list_by_time(window[0], window[1], cursor.page, self.page_max)
            except (BudgetExhausted, AnyRTCError) as exc:
                return self._stopped(task_id, result, exc)
            result.pages += 1
            result.stages.append(cursor.stage)
            self.ops.incr("calls_poll")
            seen_ms = redis_now_ms(self.client)
            for file in page.files:
                result.files += 1
                listed.add(file_key_id(file.identity))
                self._sighted(Observation.from_vod(file, "poll", seen_ms))
            lock.reacquire()
            cursor = self._next_stage(cursor, page)
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

    @staticmethod
    def _window(cursor: PollCursor) -> tuple[int, int] | None:
        """The upload window the cursor's next call lists (None: this stage has nothing)."""
        if cursor.stage in ("head", "rest"):
            return cursor.beg_ms, cursor.end_ms
        if cursor.stage == "fresh":
            return cursor.fresh_ms, cursor.end_ms
        if cursor.follow is None or cursor.segment >= len(cursor.follow):
            return None
        return cursor.follow[cursor.segment]

    def _next_stage(self, cursor: PollCursor, page: VodPage | None) -> PollCursor:
        more = page is not None and page.has_more and bool(page.files)
        if cursor.stage == "head":
            assert page is not None
            total = page.total
            if not more or self._all_seen(cursor, total):
                return replace(cursor, stage="follow", page=1, total=total)
            if cursor.fresh_ms <= cursor.beg_ms:
                return replace(cursor, stage="rest", page=2, total=total)
            if cursor.end_ms - cursor.fresh_ms < self.registry.typical_transcode_ms():
                return replace(cursor, stage="follow", page=1, total=total, deferred=True)
            return replace(cursor, stage="fresh", page=1, total=total)
        if more:
            return replace(cursor, page=cursor.page + 1)
        if cursor.stage == "fresh":
            if self._all_seen(cursor, cursor.total):
                return replace(cursor, stage="follow", page=1)
            return replace(cursor, stage="rest", page=2)
        if cursor.stage == "rest":
            return replace(cursor, stage="follow", page=1)
        # follow: next window, or done.
        if cursor.follow is None or cursor.segment + 1 >= len(cursor.follow) or page is None:
            return replace(cursor, stage="done")
        return replace(cursor, segment=cursor.segment + 1, page=1)

    def _all_seen(self, cursor: PollCursor, total: int) -> bool:
        return self.registry.seen_between(cursor.beg_ms, cursor.end_ms) >= total

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

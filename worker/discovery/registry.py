"""Per-file state in Redis: the merged record, and the schedules that follow a file.

``observe`` folds a sighting into ``file:<fid>`` with :func:`worker.discovery.record.merge`
inside a WATCH/MULTI transaction, so concurrent sightings (a callback and a poll at the same
moment) never lose a field. The same transaction keeps the schedules right:

* ``seen``: every file a listing showed, by upload time; the poll compares it with the vendor's
  ``cnt`` to tell whether a window holds files it has not seen.
* ``follow``: a non-final file, scored by when a re-list is due: after each listing that showed
  it, ``max(now + recheck, upload + typical transcode time)``, so a transcoding file is not
  re-listed on every poll. The typical time is learned from files that went final (a third of
  ``EXPECTED_TRANSCODE_S`` until the first one did).
* ``checks``: the moment a non-final file becomes overdue (upload + ``EXPECTED_TRANSCODE_S``);
  from then on the sweep, not the poll, checks it.

A final file is in none of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from worker.anyrtc.models import FileStatus
from worker.discovery.keys import DiscoveryKeys, file_key_id
from worker.discovery.record import Observation, is_final, merge

__all__ = ["FILE_TTL_S", "FileRegistry", "Sighting"]

FILE_TTL_S = 30 * 24 * 3600
_WATCH_ATTEMPTS = 20


@dataclass(frozen=True)
class Sighting:
    """The result of one observation: the file id, its record after it, and what changed."""

    fid: str
    record: dict[str, str]
    became_final: bool


class FileRegistry:
    """Reads and writes file records under ``{<prefix>}:disc:file:<fid>``."""

    def __init__(
        self,
        client: redis.Redis,
        keys: DiscoveryKeys,
        *,
        expected_transcode_s: float,
        recheck_s: float,
    ) -> None:
        self.client = client
        self.keys = keys
        self.expected_transcode_ms = int(expected_transcode_s * 1000)
        self.recheck_ms = int(recheck_s * 1000)

    def observe(self, obs: Observation) -> Sighting:
        """Merge ``obs`` into its file's record (atomically) and return the outcome."""
        fid = file_key_id(obs.identity)
        key = self.keys.file(fid)
        # Only a non-final file needs it (to schedule its re-list); callbacks are always final.
        typical_ms = self.typical_transcode_ms() if obs.status not in FileStatus.FINAL else 0
        for _ in range(_WATCH_ATTEMPTS):
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)
                    before = {str(k): str(v) for k, v in pipe.hgetall(key).items()}
                    after = merge(before, obs)
                    pipe.multi()
                    changed = {k: v for k, v in after.items() if before.get(k) != v}
                    if changed:
                        pipe.hset(key, mapping=changed)
                    pipe.expire(key, FILE_TTL_S)
                    if obs.upload_ms is not None:
                        pipe.zadd(self.keys.seen, {fid: obs.upload_ms})
                    self._schedule(pipe, fid, after, obs, typical_ms)
                    pipe.execute()
                except redis.WatchError:
                    continue
            became_final = is_final(after) and not is_final(before)
            if became_final and before.get("upload_ms"):
                self._learn(obs.seen_ms - int(before["upload_ms"]))
            return Sighting(fid, after, became_final)
        raise RuntimeError(f"file {fid} changed {_WATCH_ATTEMPTS} times while merging")

    def _schedule(
        self, pipe: Any, fid: str, after: dict[str, str], obs: Observation, typical_ms: int
    ) -> None:
        if is_final(after):
            pipe.zrem(self.keys.follow, fid)
            pipe.zrem(self.keys.checks, fid)
            return
        upload = int(after.get("upload_ms") or after["first_seen_ms"])
        overdue_at = upload + self.expected_transcode_ms
        pipe.zadd(self.keys.checks, {fid: overdue_at}, nx=True)
        if obs.source != "callback" and obs.seen_ms < overdue_at:
            due = max(obs.seen_ms + self.recheck_ms, upload + typical_ms)
            pipe.zadd(self.keys.follow, {fid: min(due, overdue_at)})

    def typical_transcode_ms(self) -> int:
        """Upload -> final status, as learned; a third of EXPECTED_TRANSCODE_S until then."""
        learned = self.client.get(self.keys.transcode_est)
        return int(learned) if learned else self.expected_transcode_ms // 3

    def _learn(self, sample_ms: int) -> None:
        # A rough moving average is enough: it only decides when listing a file is worth it.
        if 0 < sample_ms < self.expected_transcode_ms:
            learned = self.client.get(self.keys.transcode_est)
            value = int(0.8 * int(learned) + 0.2 * sample_ms) if learned else sample_ms
            self.client.set(self.keys.transcode_est, value, ex=FILE_TTL_S)

    def get(self, fid: str) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.client.hgetall(self.keys.file(fid)).items()}

    def set_fields(self, fid: str, fields: dict[str, str]) -> None:
        """Annotate an existing record (never creates one)."""
        key = self.keys.file(fid)
        if fields and self.client.exists(key):
            self.client.hset(key, mapping=fields)

    def due_follow(self, now_ms: int, limit: int = 1000) -> list[str]:
        """Non-final files whose re-list is due."""
        found = self.client.zrangebyscore(self.keys.follow, "-inf", now_ms, start=0, num=limit)
        return [str(f) for f in found]

    def upload_times(self, fids: list[str]) -> dict[str, int]:
        """Upload time (ms) of each file that has one."""
        pipe = self.client.pipeline(transaction=False)
        for fid in fids:
            pipe.hget(self.keys.file(fid), "upload_ms")
        return {fid: int(v) for fid, v in zip(fids, pipe.execute(), strict=True) if v}

    def seen_between(self, beg_ms: int, end_ms: int) -> int:
        """How many listed files have an upload time in ``[beg_ms, end_ms]``."""
        return int(self.client.zcount(self.keys.seen, beg_ms, end_ms))

    def forget_seen_before(self, ms: int) -> None:
        self.client.zremrangebyscore(self.keys.seen, "-inf", f"({ms}")

    def stop_following(self, fid: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.zrem(self.keys.follow, fid)
        pipe.zrem(self.keys.checks, fid)
        pipe.execute()

    @staticmethod
    def json_list(record: dict[str, str], name: str) -> list[str]:
        try:
            value = json.loads(record.get(name) or "[]")
        except ValueError:
            return []
        return [str(v) for v in value] if isinstance(value, list) else []

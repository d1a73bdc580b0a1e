"""Every Redis key discovery reads or writes, in one place (all under ``{<prefix>}:disc:``).

The prefix is wrapped in a Redis Cluster hash tag (``{`` + prefix + ``}``), so every key of one
deployment hashes to the same slot: the Lua scripts and MULTI transactions that touch several of
them at once keep working on a cluster. The scripts get every key in KEYS, never build one.

| key                              | type   | what                                              |
| -------------------------------- | ------ | ------------------------------------------------- |
| ``budget:<app_id>``              | zset   | sliding log of query calls (limiter)              |
| ``poll:lock``                    | string | one poller at a time (redis-py Lock, heartbeated) |
| ``poll:running``                 | string | task id of the poll holding the lock (kept after a|
|                                  |        | crash: its lock expires, this does not)           |
| ``poll:watermark``               | string | end (epoch ms) of the last complete time poll     |
| ``poll:cursor``                  | hash   | beg_ms, end_ms, page of a poll under way          |
| ``poll:retry``                   | string | task id of the poll retry that is queued          |
| ``file:<fid>``                   | hash   | everything known about one file (merged sources)  |
| ``follow``                       | zset   | fid of non-final files, by next re-list due ms    |
| ``seen``                         | zset   | fid of every listed file, by upload ms (counts)   |
| ``transcode_est``                | string | learned typical upload -> final time (ms)         |
| ``checks``                       | zset   | fid of overdue files, scored by next check ms     |
| ``await``                        | zset   | fid of final files waiting for a room, by deadline|
| ``await:room:<room_id>``         | set    | fid waiting for the look-up of that room          |
| ``lookup:<room_id>``             | hash   | a room look-up requested (beg_ms, end_ms)         |
| ``outbox:<fid>``                 | hash   | the one message of a file: state, body, key, times|
| ``outbox:pending``               | zset   | fid claimed but not yet confirmed sent, by due ms |
| ``rejects``                      | list   | rejected callbacks (newest first, capped)         |
| ``intake``                       | hash   | acknowledged callbacks not yet processed (id->JSON)|
| ``intake:at``                    | zset   | their ids, by time received (ms)                  |
| ``errors``                       | list   | problems an operator must see (newest first)      |
| ``roomfiles:<room_id>``          | zset   | message ids of the room's delivered files, by the |
|                                  |        | file's start time (s): what the missing judge asks|
| ``missing:cursor``               | string | stopped_at (s) up to which sessions were enrolled |
| ``missing:s:<session_id>``       | hash   | one session's judgement: state (lookup, looked,   |
|                                  |        | found, missing), room, look-up outcome            |
| ``missing:lookups``              | zset   | session ids whose low-priority room look-up is due|
|                                  |        | (ms; leased while it runs)                        |
| ``silence``                      | hash   | callback silence: last_callback_ms, quiet_since_ms|
|                                  |        | quiet_files, warned_ms                            |
| ``stats``                        | hash   | counters (calls, deliveries per source, rejects)  |

``fid`` is :func:`file_key_id`: a hash of the file's identity (its normalised download URL),
which is also the downstream message id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from worker.redis import hash_tag

__all__ = ["DiscoveryKeys", "file_key_id", "hash_tag"]


def file_key_id(identity: str) -> str:
    """The stable id of a file: the first 32 hex digits of sha256(normalised download URL)."""
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class DiscoveryKeys:
    """Key names under ``{<prefix>}:disc:``."""

    prefix: str

    def _k(self, *parts: str) -> str:
        return ":".join((hash_tag(self.prefix), "disc", *parts))

    def budget(self, app_id: str) -> str:
        return self._k("budget", app_id)

    @property
    def poll_lock(self) -> str:
        return self._k("poll", "lock")

    @property
    def poll_running(self) -> str:
        """The task id of the poll that holds the lock; left behind by a dead poller."""
        return self._k("poll", "running")

    @property
    def poll_watermark(self) -> str:
        return self._k("poll", "watermark")

    @property
    def poll_cursor(self) -> str:
        return self._k("poll", "cursor")

    @property
    def poll_retry(self) -> str:
        return self._k("poll", "retry")

    def file(self, fid: str) -> str:
        return self._k("file", fid)

    @property
    def follow(self) -> str:
        return self._k("follow")

    @property
    def seen(self) -> str:
        return self._k("seen")

    @property
    def transcode_est(self) -> str:
        return self._k("transcode_est")

    @property
    def checks(self) -> str:
        return self._k("checks")

    @property
    def awaiting(self) -> str:
        return self._k("await")

    def awaiting_room(self, room_id: str) -> str:
        return self._k("await", "room", room_id)

    def lookup(self, room_id: str) -> str:
        return self._k("lookup", room_id)

    @property
    def lookup_queue(self) -> str:
        """Rooms whose look-up is asked for, by when it may run (the look-up loop drains it)."""
        return self._k("lookups")

    def outbox(self, fid: str) -> str:
        return self._k("outbox", fid)

    @property
    def outbox_pending(self) -> str:
        return self._k("outbox", "pending")

    @property
    def intake(self) -> str:
        return self._k("intake")

    @property
    def intake_at(self) -> str:
        return self._k("intake", "at")

    @property
    def rejects(self) -> str:
        return self._k("rejects")

    @property
    def errors(self) -> str:
        return self._k("errors")

    @property
    def stats(self) -> str:
        return self._k("stats")

    def room_files(self, room_id: str) -> str:
        """Delivered files of ``room_id`` by start time: a session with one is not missing."""
        return self._k("roomfiles", room_id)

    @property
    def missing_cursor(self) -> str:
        return self._k("missing", "cursor")

    def missing(self, session_id: str) -> str:
        return self._k("missing", "s", session_id)

    @property
    def missing_queue(self) -> str:
        """Sessions whose low-priority room look-up is due, by when it may run (ms)."""
        return self._k("missing", "lookups")

    @property
    def silence(self) -> str:
        return self._k("silence")

"""The missing-file judge: a recording this product started and stopped that never gave a file.

Every recorded session whose start and stop the vendor confirmed (``reclog:by_stop``) is judged
once, ``MISSING_AFTER_S`` after its stop:

1. :meth:`MissingJudge.enroll` (the watch loop, every second) reads the sessions stopped up to
   ``now - MISSING_AFTER_S`` and before the time poll's watermark (a poll working through a
   backlog is let finish first: :meth:`MissingJudge.due_until`) past ``missing:cursor`` and
   enrols each once
   (``missing_enroll.lua``): a session with a delivered file of its room in its span
   (``roomfiles:<room>``, written when a file message is claimed) is ``found``; any other waits
   in ``missing:lookups`` for one room look-up.
2. :meth:`MissingJudge.step` (the look-up loop, only when no look-up a file waits on is due: low
   priority) leases one session, looks its room up over ``[first send, now]`` with the
   low-priority client, and feeds every listed file to the settler as any look-up does. A file
   in the session's span: ``found``. None: the outcome is stored (``looked``), then the one
   ``recording.missing`` message is claimed in the outbox and published (``missing``).

Exactly once: enrolment and every state change are single scripts guarded by the state
(``missing_judge.lua``); the look-up is leased (``DISCOVERY_LEASE_S``, heartbeated) so a dead
worker's session comes back within one lease, and one that died after the look-up goes straight
to the claim; the message goes through the file messages' outbox (claim once, the resume loop
re-publishes a claimed, unconfirmed one with the same id). A file that arrives after the message
is delivered as usual; nothing else follows. Sessions of an unconfirmed start or stop, and rooms
this product never started, are not judged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis

from schedules.recording_log import RecordingLog, RecordingSession
from worker.discovery.correlate import LOOSE_S
from worker.discovery.heartbeat import Heartbeat
from worker.discovery.keys import DiscoveryKeys
from worker.discovery.lookup_loop import MAX_ERRORS
from worker.discovery.lookups import LookupRunner
from worker.discovery.missing_message import ROUTING_KEY, build_missing_message, missing_message_id
from worker.discovery.room_files import ROOM_FILES_TTL_S, has_file
from worker.redis import scripts_for

if TYPE_CHECKING:
    from worker.discovery.fanout import FanOut

__all__ = ["MissingJudge"]

log = logging.getLogger(__name__)

#: A judgement is kept as long as the room-file index: longer than the recording log keeps a
#: session, so a session is never judged twice.
JUDGEMENT_TTL_S = ROOM_FILES_TTL_S
#: Sessions enrolled per watch-loop round (the cursor carries on from the last one).
ENROL_BATCH = 200
#: A file belongs to a session when it starts this close to the session's span.
SPAN_SLACK_S = 2 * LOOSE_S
#: Longest a judgement waits for a time poll that lags behind its sessions: past this a
#: session is judged however far behind the poll is, so a poll that never completes cannot
#: keep a missing recording untold.
POLL_WAIT_MAX_S = 4 * 3600.0


class MissingJudge:
    """Enrols recorded sessions and runs their low-priority look-ups; ``clock`` is injected."""

    def __init__(
        self,
        client: redis.Redis,
        keys: DiscoveryKeys,
        recording_log: RecordingLog,
        runner: LookupRunner,
        fanout: FanOut,
        heartbeat: Heartbeat,
        *,
        missing_after_s: float,
        lease_s: float,
        backoff_base_s: float,
        backoff_max_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.keys = keys
        self.log = recording_log
        self.runner = runner
        self.fanout = fanout
        self.heartbeat = heartbeat
        self.missing_after_s = missing_after_s
        self.lease_ms = int(lease_s * 1000)
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.clock = clock
        scripts = scripts_for(client, "worker.discovery.lua")
        self._enroll = scripts.missing_enroll
        self._judge = scripts.missing_judge
        self._lease = scripts.lease_due

    # -- enrolment (the watch loop) ----------------------------------------------------------

    def enroll(self) -> dict[str, str]:
        """Enrol the sessions whose judgement is due; ``{session id: found|lookup|known}``.

        Without a cursor the read starts at the beginning of ``reclog:by_stop``, which holds
        only sessions stopped since that index exists (so since their files were indexed)."""
        now = self.clock()
        due_until = self.due_until(now)
        cursor = float(self.client.get(self.keys.missing_cursor) or 0.0)
        enrolled: dict[str, str] = {}
        for session in self.log.stopped_between(cursor, due_until, limit=ENROL_BATCH):
            if session.stopped_at is None:
                continue
            room_files = self.keys.room_files(session.room_id)
            lo, hi = self._span(session)
            verdict = self._enroll(
                keys=[
                    self.keys.missing(session.session_id),
                    self.keys.missing_queue,
                    room_files,
                    self.keys.missing_cursor,
                ],
                args=[
                    int(now * 1000),
                    session.session_id,
                    session.room_id,
                    repr(lo),
                    repr(hi),
                    repr(session.stopped_at),
                    JUDGEMENT_TTL_S,
                    "" if session.uncertain else "1",
                ],
            )
            if verdict != "skipped":
                enrolled[session.session_id] = str(verdict)
        return enrolled

    def due_until(self, now: float) -> float:
        """Sessions stopped up to this moment (epoch s) are judged now: ``MISSING_AFTER_S`` ago,
        and only once a complete time poll has listed the uploads past their stop (its
        watermark, the end of the last complete poll, is past it).

        After a downtime the poll works through a backlog for a while; a look-up for a session
        whose file the poll is about to list would spend the query budget the backlog needs
        (and the file would be found anyway). :data:`POLL_WAIT_MAX_S` bounds the wait."""
        due_until = now - self.missing_after_s
        watermark = self.client.get(self.keys.poll_watermark)
        if watermark:
            polled_until = int(watermark) / 1000
            due_until = max(min(due_until, polled_until), due_until - POLL_WAIT_MAX_S)
        return due_until

    # -- the low-priority look-up (the look-up loop) -----------------------------------------

    def next_at(self) -> float | None:
        """When the earliest session look-up may run (epoch s), or None."""
        head = self.client.zrange(self.keys.missing_queue, 0, 0, withscores=True)
        return float(head[0][1]) / 1000 if head else None

    def step(self) -> str | None:
        """Judge the earliest due session, if any; returns its id."""
        taken = self._lease(keys=[self.keys.missing_queue], args=[self._now_ms(), self.lease_ms, 1])
        if not taken:
            return None
        session_id = str(taken[0])
        with self.heartbeat.holding(self.keys.missing_queue, session_id):
            self._judge_one(session_id)
        return session_id

    def drain(self) -> list[str]:
        """Judge every session due now (tests, in one process)."""
        done = []
        while (session_id := self.step()) is not None:
            done.append(session_id)
        return done

    def _judge_one(self, session_id: str) -> None:
        state = self.client.hget(self.keys.missing(session_id), "state")
        session = self.log.get(session_id)
        if state not in ("lookup", "looked") or session is None:
            # Judged meanwhile, or the session expired: nothing to say any more.
            self._move(session_id, "found" if state is None else str(state), "")
            return
        if state == "lookup":
            if self._has_file(session):
                self._move(session_id, "found", "")
                return
            lookup = self._look_up(session)
            if lookup is None:
                return  # postponed: the budget, or a vendor error to retry
            if lookup["outcome"] == "file":
                self._move(session_id, "found", json.dumps(lookup))
                return
            state = self._move(session_id, "looked", json.dumps(lookup))
            if state != "looked":
                return
        stored = self.client.hget(self.keys.missing(session_id), "lookup")
        lookup = json.loads(stored) if stored else {}
        body = build_missing_message(
            session,
            lookup,
            missing_after_s=self.missing_after_s,
            detected_at_ms=self._now_ms(),
        )
        mid = missing_message_id(session_id)
        if self.fanout.deliver_as(mid, body, ROUTING_KEY, "missing"):
            log.warning(
                "recording missing: room %s, session %s (bookings %s): no file, room look-up %s",
                session.room_id,
                session_id,
                ",".join(session.booking_ids) or "-",
                lookup.get("outcome"),
            )
        self._move(session_id, "missing", "")

    def _look_up(self, session: RecordingSession) -> dict[str, Any] | None:
        """The room look-up's outcome, or None when it was postponed."""
        beg_ms = int((session.earliest - SPAN_SLACK_S) * 1000)
        end_ms = self._now_ms()
        result, listed = self.runner.probe(session.room_id, beg_ms, end_ms)
        if result.status == "retry":
            # The budget's wait (or a 299's closed window) is no error and costs no back-off.
            delay = result.retry_after
            errors = 0
            if delay is None:
                key = self.keys.missing(session.session_id)
                errors = int(self.client.hincrby(key, "errors", 1))
                delay = min(self.backoff_base_s * 2 ** min(errors - 1, 16), self.backoff_max_s)
            if errors <= MAX_ERRORS:
                due = self._now_ms() + int(delay * 1000)
                self.client.zadd(self.keys.missing_queue, {session.session_id: due}, xx=True)
                return None
        lo, hi = self._span(session)
        mine = [o for o in listed if o.start_time is not None and lo <= o.start_time <= hi]
        outcome = "file" if mine else ("no_file" if result.status == "done" else "failed")
        code = result.error.code if result.error is not None else None
        return {
            "at_ms": self._now_ms(),
            "from_ms": beg_ms,
            "to_ms": end_ms,
            "outcome": outcome,
            "code": None if code is None else str(code),
            "files_listed": len(listed),
        }

    def _has_file(self, session: RecordingSession) -> bool:
        lo, hi = self._span(session)
        return has_file(self.client, self.keys, session.room_id, lo, hi)

    def _move(self, session_id: str, to: str, lookup: str) -> str:
        keys = [self.keys.missing(session_id), self.keys.missing_queue]
        return str(self._judge(keys=keys, args=[self._now_ms(), session_id, to, lookup]))

    @staticmethod
    def _span(session: RecordingSession) -> tuple[float, float]:
        stop = session.stopped_at if session.stopped_at is not None else session.started_at
        return session.earliest - SPAN_SLACK_S, stop + SPAN_SLACK_S

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

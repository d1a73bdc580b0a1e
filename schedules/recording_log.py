"""The log of recordings this product made: one session per vendor recording of a room.

Lifecycle writes it when the vendor confirms a start or a stop; discovery reads it to tie a
time-listed file (which carries no room) to the room and bookings it came from.

Its keys (``{<prefix>}:reclog:...``) are named in ``schedules/keys.py``
(:class:`~schedules.keys.RecordingLogKeys`). Writes that depend on the room's open session
(``stopped``, ``add_bookings``) read the open session id first and pass its key; the script
answers ``moved`` if another session is open by then, and the call is made again (see
``schedules/store.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis

from schedules.keys import RecordingLogKeys
from schedules.store import MOVED, MOVED_TRIES, KeysMoved
from worker.redis import scripts_for

__all__ = ["RecordingLog", "RecordingSession"]

RETENTION_S = 30 * 24 * 3600
MAX_SESSION_S = 24 * 3600

# (hash key, field, value): write only while HGET key field == value, checked in the same script.
Guard = tuple[str, str, str]


@dataclass(frozen=True)
class RecordingSession:
    """One vendor recording of one room, from start to stop.

    ``started_at`` is when the vendor confirmed the start; ``sent_at`` when its first attempt
    was sent, the earliest the vendor may have started (long before the confirmation when a
    reply was lost). The recording began somewhere in ``[earliest, started_at]``."""

    session_id: str
    room_id: str
    started_at: float
    stopped_at: float | None
    booking_ids: tuple[str, ...] = field(default_factory=tuple)
    user_data: str | None = None
    sent_at: float | None = None
    uncertain: bool = False

    @property
    def earliest(self) -> float:
        return self.sent_at if self.sent_at is not None else self.started_at

    def overlaps(self, start_s: float, end_s: float, slack_s: float = 0.0) -> bool:
        stop = self.stopped_at if self.stopped_at is not None else float("inf")
        return self.earliest - slack_s <= end_s and stop + slack_s >= start_s


class RecordingLog:
    """Reads and writes recording sessions under ``prefix``."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.r = client
        self.prefix = prefix
        self.keys = RecordingLogKeys(prefix)
        scripts = scripts_for(client, "schedules.lua")
        self._log_start = scripts.log_start
        self._log_stop = scripts.log_stop
        self._add_bookings = scripts.add_bookings

    def started(
        self,
        room_id: str,
        started_at: float,
        booking_ids: Iterable[str] = (),
        user_data: str | None = None,
        *,
        guard: Guard | None = None,
        sent_at: float | None = None,
        uncertain: bool = False,
    ) -> str | None:
        """Note that the vendor started recording ``room_id`` (confirmed at ``started_at``, its
        first attempt sent at ``sent_at``); idempotent while it stays open (returns the open
        session's id). One round trip (``log_start.lua``). With ``guard``, nothing is written
        and None returned unless the guard holds. ``uncertain``: the start's outcome is unknown
        (possibly recording); such a session is never judged for a missing file."""
        session_id = f"{room_id}:{int(started_at * 1000)}"
        k = self.keys
        guard_key, field_name, value = guard or (k.open(room_id), "", "")
        reply = self._log_start(
            keys=[
                k.open(room_id),
                k.session(session_id),
                k.by_start,
                k.room(room_id),
                guard_key,
                k.max_span,
            ],
            args=[
                session_id,
                room_id,
                repr(started_at),
                json.dumps(sorted(set(booking_ids))),
                user_data or "",
                RETENTION_S,
                field_name,
                value,
                "" if sent_at is None else repr(sent_at),
                "1" if uncertain else "",
            ],
        )
        return str(reply[1]) if int(reply[0]) == 1 else None

    def add_bookings(self, room_id: str, booking_ids: Iterable[str]) -> None:
        """Record more bookings sharing the room's running recording (nothing when none runs).
        Atomic (``add_bookings.lua``): bookings added at once to one session all stay in it."""
        ids = sorted(set(booking_ids))
        if not ids:
            return
        open_key = self.keys.open(room_id)
        for _ in range(MOVED_TRIES):
            session_id = self.r.get(open_key)
            if not session_id:
                return
            reply = self._add_bookings(
                keys=[open_key, self.keys.session(str(session_id))], args=[session_id, *ids]
            )
            if reply[0] != MOVED:
                return
        raise KeysMoved(f"room {room_id}: its open recording session kept changing")

    def stopped(
        self,
        room_id: str,
        stopped_at: float,
        *,
        guard: Guard | None = None,
        confirmed: bool = True,
    ) -> str | None:
        """Close the room's running session; returns its id (None when none was open, or when
        ``guard`` does not hold: then nothing is written). Reads the open session id, then
        closes it in one step (``log_stop.lua``). ``confirmed``: the vendor confirmed the stop,
        so the session is listed by :meth:`stopped_between`."""
        open_key = self.keys.open(room_id)
        guard_key, field_name, value = guard or (open_key, "", "")
        for _ in range(MOVED_TRIES):
            session_id = str(self.r.get(open_key) or "")
            session_keys = [self.keys.session(session_id)] if session_id else []
            reply = self._log_stop(
                keys=[open_key, guard_key, self.keys.by_stop, *session_keys],
                args=[
                    repr(stopped_at),
                    session_id,
                    field_name,
                    value,
                    "1" if confirmed else "",
                    RETENTION_S,
                ],
            )
            if reply[0] != MOVED:
                return str(reply[1]) if int(reply[0]) == 1 and len(reply) > 1 else None
        raise KeysMoved(f"room {room_id}: its open recording session kept changing")

    def get(self, session_id: str) -> RecordingSession | None:
        return self._session(session_id, self.r.hgetall(self.keys.session(session_id)))

    def _get_many(self, session_ids: list[str]) -> list[RecordingSession]:
        """The sessions that still exist, in order, read in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for session_id in session_ids:
            pipe.hgetall(self.keys.session(session_id))
        found = (
            self._session(i, data) for i, data in zip(session_ids, pipe.execute(), strict=True)
        )
        return [s for s in found if s is not None]

    @staticmethod
    def _session(session_id: str, data: dict[str, str]) -> RecordingSession | None:
        if not data:
            return None
        return RecordingSession(
            session_id=session_id,
            room_id=data["room_id"],
            started_at=float(data["started_at"]),
            stopped_at=float(data["stopped_at"]) if data.get("stopped_at") else None,
            booking_ids=tuple(json.loads(data.get("booking_ids") or "[]")),
            user_data=data.get("user_data") or None,
            sent_at=float(data["sent_at"]) if data.get("sent_at") else None,
            uncertain=data.get("uncertain") == "1",
        )

    def overlapping(
        self, start_s: float, end_s: float, slack_s: float = 5.0
    ) -> list[RecordingSession]:
        """Sessions whose recording overlaps ``[start_s, end_s]`` (with ``slack_s`` each side)."""
        ids = self.r.zrangebyscore(
            self.keys.by_start, start_s - MAX_SESSION_S - slack_s, end_s + slack_s
        )
        sessions = self._get_many([str(i) for i in ids])
        return [s for s in sessions if s.overlaps(start_s, end_s, slack_s)]

    def started_between(self, lo_s: float, hi_s: float) -> list[RecordingSession]:
        """Sessions whose start span (first attempt sent .. confirmed) meets ``[lo_s, hi_s]``,
        and a few that start a little earlier: a narrow read, where :meth:`overlapping` must
        read every session of the last ``MAX_SESSION_S``. Sessions are indexed by their first
        send, so the read reaches back by the widest span logged (a start whose reply was lost
        spans its retries): a session the vendor started later in its span is not missed."""
        widest = float(self.r.get(self.keys.max_span) or 0.0)
        ids = self.r.zrangebyscore(self.keys.by_start, lo_s - widest, hi_s)
        return self._get_many([str(i) for i in ids])

    def stopped_between(self, lo_s: float, hi_s: float, limit: int = 500) -> list[RecordingSession]:
        """Sessions whose confirmed stop lies in ``(lo_s, hi_s]``, oldest stop first, at most
        ``limit`` (read on from the last one's ``stopped_at``)."""
        ids = self.r.zrangebyscore(self.keys.by_stop, f"({lo_s!r}", hi_s, start=0, num=limit)
        return self._get_many([str(i) for i in ids])

    def for_room(self, room_id: str) -> list[RecordingSession]:
        """Every logged session of ``room_id``, oldest first."""
        ids = self.r.zrange(self.keys.room(room_id), 0, -1)
        return self._get_many([str(i) for i in ids])

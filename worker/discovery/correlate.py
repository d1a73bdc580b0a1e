"""Tie a file to the room and bookings this product recorded it for.

A time-listed file carries no room, only the start and end of its recording (epoch seconds).
The recording log (written by the lifecycle when the vendor confirms a start or a stop) holds
every recording this product made. The rule:

* the file names its room (callback ``groupId`` or a room look-up): ``room``; bookings come
  from that room's session whose times contain the file.
* exactly one logged session started and stopped within ``TIGHT_S`` of the file's start and end
  (the vendor lists whole seconds, so a listed second ``s`` stands for ``[s, s + 1)``):
  ``unique``, that session's room and bookings. Two recordings are told apart when their starts
  or their stops differ by more than ``1 + TIGHT_S`` seconds.
* otherwise, any logged sessions whose span contains the file (``LOOSE_S`` each side):
  ``ambiguous``; the caller looks those rooms up (one look-up settles every file of a room).
* no logged session at all: ``unknown``, a room this product never started (auto-recording in
  the vendor console); only a callback can name its room.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schedules.recording_log import RecordingLog, RecordingSession

__all__ = ["LOOSE_S", "TIGHT_S", "Correlation", "Correlator"]

#: How far the logged start/stop may sit outside the file's listed second and still be "the
#: same": our log stores when the vendor *confirmed* the call (a round trip later), and the
#: vendor's clock may differ a little from ours.
TIGHT_S = 0.75
#: Slack for "this session's span contains the file" (clock differences, per-user streams).
LOOSE_S = 2.0


@dataclass(frozen=True)
class Correlation:
    """What correlation concluded for one file."""

    kind: str  # "room" | "unique" | "ambiguous" | "unknown"
    room_id: str | None = None
    booking_ids: tuple[str, ...] = ()
    candidates: tuple[str, ...] = ()


def _int(record: Mapping[str, str], name: str) -> int | None:
    value = record.get(name)
    return int(value) if value not in (None, "") else None


def _contains(session: RecordingSession, start: int, end: int, slack: float) -> bool:
    stop = session.stopped_at if session.stopped_at is not None else float("inf")
    return session.earliest - slack <= start and end <= stop + slack


def _gap(listed_s: int, logged: float) -> float:
    """Distance from ``logged`` to the listed whole second ``[listed_s, listed_s + 1)``."""
    return max(0.0, listed_s - logged, logged - (listed_s + 1))


def _start_gap(listed_s: int, session: RecordingSession) -> float:
    """Distance from the listed start second to the span in which the vendor started: from the
    first attempt's send to the confirmation (wide when a reply was lost)."""
    return max(0.0, session.earliest - (listed_s + 1), listed_s - session.started_at)


def _tight(session: RecordingSession, start: int, end: int) -> bool:
    if session.stopped_at is None:
        return False
    return _start_gap(start, session) <= TIGHT_S and _gap(end, session.stopped_at) <= TIGHT_S


class Correlator:
    """Correlates file records with the recording log."""

    def __init__(self, log: RecordingLog) -> None:
        self.log = log

    def correlate(self, record: Mapping[str, str]) -> Correlation:
        start = _int(record, "start_time")
        end = _int(record, "end_time")
        room = record.get("room_id") or None
        if room:
            return Correlation("room", room, self._room_bookings(room, start, end))
        if start is None or end is None:
            return Correlation("unknown")
        # A tight session started within TIGHT_S of the listed second: read only those first.
        # The wide read (every session of the last MAX_SESSION_S) costs one hash per session
        # logged that day, per file, and only a file the narrow read does not settle needs it.
        near = self.log.started_between(start - TIGHT_S, start + 1 + TIGHT_S)
        tight = [s for s in near if _tight(s, start, end)]
        if len(tight) == 1:
            return Correlation("unique", tight[0].room_id, tight[0].booking_ids)
        sessions = self.log.overlapping(start, end, slack_s=LOOSE_S)
        tight = [s for s in sessions if _tight(s, start, end)]
        containing = [s for s in sessions if _contains(s, start, end, LOOSE_S)]
        rooms = tuple(sorted({s.room_id for s in (tight or containing)}))
        if rooms:
            return Correlation("ambiguous", candidates=rooms)
        return Correlation("unknown")

    def _room_bookings(self, room: str, start: int | None, end: int | None) -> tuple[str, ...]:
        sessions = self.log.for_room(room)
        if start is None or end is None:
            return sessions[-1].booking_ids if len(sessions) == 1 else ()
        matching = [s for s in sessions if _contains(s, start, end, LOOSE_S)]
        if not matching:
            return ()
        best = min(matching, key=lambda s: _start_gap(start, s))
        return best.booking_ids

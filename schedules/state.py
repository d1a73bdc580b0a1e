"""Booking and room states, their allowed transitions, and read access to state and history.

Transitions are made only by the Lua scripts (atomically); this module names the states, states
which transitions exist (tests check every history against it), and reads what the scripts wrote.

Booking: ``scheduled`` → ``starting`` (holds its room; the vendor start is under way or the room
is busy) → ``recording`` → ``stopping`` (last holder released; the vendor stop is under way) →
``stopped``. A booking joining a room that already records goes ``scheduled`` → ``recording``
directly; one leaving a room others still hold goes ``recording`` → ``stopped`` directly. Any
non-final state may end in ``failed`` (vendor gave a permanent error, retries stopped being
useful, or the window passed unrecorded) or ``cancelled``. A reschedule may send a booking back
to ``scheduled``; a schedule after a final state starts it afresh.

Room: ``idle`` → ``starting`` → ``recording`` → ``stopping`` → ``idle``; a failed start or stop
returns it to ``idle``.

A booking is stored in the hash ``lc:b:<id>`` with short fields (``schedules/layout.py`` lists
them); :class:`BookingView` gives them their long names.

Room hash fields (``lc:room:<id>``): room_id, state, since, op_seq, op_id, op_kind,
op_started_at, op_by, call_token/call_deadline (the open vendor call attempt), attempts,
uncertain ("1" after a lost reply), last_code/last_message, rec_params, changed_at.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import redis

from schedules.keys import LifecycleKeys
from schedules.layout import PARAM_NAMES, first_entry, next_action

__all__ = [
    "FINAL_STATES",
    "BookingView",
    "RoomView",
    "StateReader",
]

FINAL_STATES = frozenset({"stopped", "failed", "cancelled"})


def _float(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


@dataclass(frozen=True)
class BookingView:
    """A booking as stored (times in epoch seconds)."""

    booking_id: str
    room_id: str
    state: str
    start_at: float | None
    end_at: float | None
    start_due: float | None
    stop_due: float | None
    next_action: str
    next_at: float | None
    updated_at: float | None
    reason: str
    code: str
    message: str
    held_room: str
    params: dict[str, Any] = field(default_factory=dict)
    created_at: float | None = None
    changed_at: float | None = None

    @classmethod
    def from_hash(cls, booking_id: str, data: dict[str, str]) -> BookingView:
        """The booking ``booking_id`` from its stored hash (short fields, see layout.py)."""
        return cls(
            booking_id=booking_id,
            room_id=data.get("rm", ""),
            state=data.get("st", ""),
            start_at=_float(data.get("sa")),
            end_at=_float(data.get("ea")),
            start_due=_float(data.get("sd")),
            stop_due=_float(data.get("ed")),
            next_action=next_action(data, booking_id),
            next_at=_float(data.get("na")),
            updated_at=_float(data.get("ua")),
            reason=data.get("rs", ""),
            code=data.get("cd", ""),
            message=data.get("ms", ""),
            held_room=data.get("hr", ""),
            params=dict.fromkeys(PARAM_NAMES) | json.loads(data.get("pa") or "{}"),
            created_at=_float(data.get("ca")),
            changed_at=_float(data.get("ch")),
        )

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RoomView:
    """A room as stored."""

    room_id: str
    state: str
    since: float | None
    op_id: str
    op_kind: str
    attempts: int
    holders: tuple[str, ...]
    last_code: str = ""
    last_message: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["holders"] = list(self.holders)
        return data


class StateReader:
    """Read-only access to bookings, rooms, histories and the pending/active lists."""

    def __init__(self, client: redis.Redis, keys: LifecycleKeys) -> None:
        self.r = client
        self.keys = keys

    def booking(self, booking_id: str) -> BookingView | None:
        data = self.r.hgetall(self.keys.booking(booking_id))
        return BookingView.from_hash(booking_id, data) if data else None

    def history(self, booking_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """The booking's history, oldest first (at most the newest ``limit`` entries).

        A booking not touched since it was scheduled has no history list yet: its one entry is
        built from its hash (:func:`schedules.layout.first_entry`), read in the same step.
        """
        pipe = self.r.pipeline(transaction=True)
        pipe.lrange(self.keys.bhist(booking_id), -limit, -1)
        pipe.hgetall(self.keys.booking(booking_id))
        listed, data = pipe.execute()
        entries = [json.loads(e) for e in listed]
        first = first_entry(data, booking_id) if limit > 0 else None
        return [first, *entries][-limit:] if first is not None else entries

    def room(self, room_id: str) -> RoomView | None:
        data = self.r.hgetall(self.keys.room(room_id))
        holders = tuple(sorted(self.r.smembers(self.keys.rhold(room_id))))
        if not data and not holders:
            return None
        return RoomView(
            room_id=room_id,
            state=data.get("state") or "idle",
            since=_float(data.get("since")),
            op_id=data.get("op_id", ""),
            op_kind=data.get("op_kind", ""),
            attempts=int(data.get("attempts") or 0),
            holders=holders,
            last_code=data.get("last_code", ""),
            last_message=data.get("last_message", ""),
        )

    def upcoming(self, limit: int = 50) -> list[tuple[float, BookingView]]:
        """Pending starts, earliest first: (due time, booking)."""
        found: list[tuple[float, BookingView]] = []
        offset, page = 0, max(limit * 2, 100)
        while len(found) < limit:
            rows = self.r.zrange(self.keys.due, offset, offset + page - 1, withscores=True)
            if not rows:
                break
            offset += page
            for member, score in rows:
                if not member.startswith("start:"):
                    continue
                booking_id = member[len("start:") : member.rindex(":")]
                view = self.booking(booking_id)
                if view is not None and view.next_action == member:
                    found.append((score, view))
        return found[:limit]

    def active(self) -> list[BookingView]:
        """Bookings holding or releasing a room (starting/recording/stopping), by stop due."""
        ids = self.r.zrange(self.keys.active, 0, -1)
        views = [self.booking(i) for i in ids]
        return [v for v in views if v is not None]

    def recording_rooms(self) -> list[RoomView]:
        """Rooms the vendor records for us, by start time."""
        rooms = [self.room(i) for i in self.r.zrange(self.keys.rooms, 0, -1)]
        return [room for room in rooms if room is not None]

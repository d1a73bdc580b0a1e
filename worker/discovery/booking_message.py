"""The downstream booking message, ``booking.v1``: one per booking transition a booking system
acts on, built from the facts the lifecycle scripts queued (``tell`` in ``worker/lua/lib.lua``).

The routing key is the message's ``event``, so ``DOWNSTREAM_QUEUES=bookings=booking.#`` gets them
all. Times are ISO 8601 UTC (``Z``): the booked window to the second, the rest to the
millisecond. ``message_id`` never repeats: a redelivered message has the same id, so consumers
drop it by id. The body is a pure function of the stored facts, so a message published again
after a crash is the same message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from worker.discovery.message import iso_millis, iso_seconds

__all__ = ["EVENTS", "MISSED_CODES", "SCHEMA", "build_booking_message", "event_name"]

SCHEMA = "booking.v1"
EVENTS = (
    "booking.recording",
    "booking.stopped",
    "booking.failed",
    "booking.missed",
    "booking.cancelled",
)
#: Failure codes that mean the window passed unrecorded (no vendor refusal): ``booking.missed``.
MISSED_CODES = frozenset({"missed", "not_started"})


def event_name(state: str, code: str) -> str:
    """The event (and routing key) of a booking that entered ``state``."""
    if state == "failed":
        return "booking.missed" if code in MISSED_CODES else "booking.failed"
    event = f"booking.{state}"
    if event not in EVENTS:
        raise ValueError(f"state {state!r} is not told downstream")
    return event


def _seconds(value: Any) -> str | None:
    return iso_seconds(float(value)) if value not in (None, "") else None


def _millis(value: Any) -> str | None:
    return iso_millis(round(float(value) * 1000)) if value not in (None, "") else None


def _object(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) and text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _tried(facts: Mapping[str, Any]) -> dict[str, Any]:
    tried = _object(facts.get("tried"))
    attempts = tried.get("attempts")
    return {
        "call": tried.get("call") or None,
        "attempts": int(attempts) if isinstance(attempts, int | float) else 0,
        "last_code": tried.get("last_code") or None,
        "last_message": tried.get("last_message") or None,
    }


def build_booking_message(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The ``booking.v1`` body of one queued transition."""
    state = str(facts["state"])
    code = str(facts.get("code") or "")
    event = event_name(state, code)
    request = _object(facts.get("request"))
    kwargs = request.get("kwargs") if isinstance(request.get("kwargs"), dict) else {}
    failed = state == "failed"
    return {
        "schema": SCHEMA,
        "event": event,
        "message_id": str(facts["message_id"]),
        "booking_id": str(facts["booking_id"]),
        "room_id": str(facts.get("room_id") or "") or None,
        "state": state,
        "reason": str(facts.get("reason") or "") or None,
        "start_at": _seconds(facts.get("start_at")),
        "end_at": _seconds(facts.get("end_at")),
        "started_at": _millis(facts.get("started_at")),
        "stopped_at": _millis(facts.get("stopped_at")),
        "user_data": _object(facts.get("params")).get("user_data"),
        "updated_at": kwargs.get("updated_at"),
        "code": (code or None) if failed else None,
        "message": (str(facts.get("message") or "") or None) if failed else None,
        "tried": _tried(facts) if failed else None,
        "occurred_at": _millis(facts["at"]),
    }

"""The ``recording.missing`` message: a recording this product started and stopped whose file
never came (schema ``recording.missing.v1``, a sibling of the file messages' ``recording.v1``).

It shares the ``recordings`` exchange and the ``recording.`` prefix with the file messages, so a
queue bound to ``recording.*`` or ``recording.#`` gets it too: tell the two apart by the routing
key or by ``schema``. Times are ISO 8601 UTC to the millisecond. ``message_id`` is a hash of the
session id, so a message published again after a crash has the same id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schedules.recording_log import RecordingSession
from worker.discovery.keys import file_key_id
from worker.discovery.message import booking_from_user_data, iso_millis
from worker.discovery.record import user_data_value

__all__ = ["ROUTING_KEY", "SCHEMA", "TRIED", "build_missing_message", "missing_message_id"]

SCHEMA = "recording.missing.v1"
ROUTING_KEY = "recording.missing"
#: What the product did to find the file, in order, before it said the file is missing.
TRIED = ("callback", "time_poll", "room_lookup")


def missing_message_id(session_id: str) -> str:
    """The message id of a session's one ``recording.missing``: stable across retries."""
    return file_key_id("missing:" + session_id)


def build_missing_message(
    session: RecordingSession,
    lookup: Mapping[str, Any],
    *,
    missing_after_s: float,
    detected_at_ms: int,
) -> dict[str, Any]:
    """The body for ``session``; ``lookup`` is the room look-up's outcome as stored by the
    judge (``at_ms``, ``from_ms``, ``to_ms``, ``outcome``, ``code``, ``files_listed``)."""
    user_data = user_data_value(session.user_data)
    bookings = list(dict.fromkeys(session.booking_ids))
    booking_id = booking_from_user_data(user_data) or (bookings[0] if bookings else None)
    if booking_id and booking_id not in bookings:
        bookings.insert(0, booking_id)
    stopped = session.stopped_at if session.stopped_at is not None else session.started_at
    return {
        "schema": SCHEMA,
        "event": ROUTING_KEY,
        "message_id": missing_message_id(session.session_id),
        "session_id": session.session_id,
        "room_id": session.room_id,
        "booking_id": booking_id,
        "booking_ids": bookings,
        "user_data": user_data,
        "started_at": iso_millis(int(session.started_at * 1000)),
        "stopped_at": iso_millis(int(stopped * 1000)),
        "missing_after_s": missing_after_s,
        "tried": list(TRIED),
        "room_lookup": {
            "at": iso_millis(int(lookup["at_ms"])),
            "from": iso_millis(int(lookup["from_ms"])),
            "to": iso_millis(int(lookup["to_ms"])),
            "outcome": str(lookup["outcome"]),
            "code": lookup.get("code") or None,
            "files_listed": int(lookup.get("files_listed") or 0),
        },
        "detected_at": iso_millis(detected_at_ms),
    }

"""The downstream message, ``recording.v1``: one per recording file, built from its record.

Field names are snake_case and stable; a field a source did not tell us is ``null``. Times are
ISO 8601 UTC (``Z``): ``start_time``/``end_time`` to the second, ``upload_time`` and
``discovered_at`` to the millisecond. ``message_id`` is the file's id (a hash of its normalised
download URL): the same file always gets the same id, so consumers can drop a redelivery.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from worker.anyrtc.models import FileStatus, parse_epoch_or_iso
from worker.discovery.record import record_status, user_data_value

__all__ = ["ROUTING_KEYS", "SCHEMA", "booking_from_user_data", "build_message", "routing_key"]

SCHEMA = "recording.v1"
ROUTING_KEYS = {FileStatus.DONE: "recording.ready", FileStatus.FAILED: "recording.failed"}


def routing_key(status: int) -> str:
    """``recording.ready`` for status 2, ``recording.failed`` for 3."""
    try:
        return ROUTING_KEYS[status]
    except KeyError:
        raise ValueError(f"status {status!r} is not final; nothing to publish") from None


def iso_seconds(epoch_s: float) -> str:
    return datetime.fromtimestamp(int(epoch_s), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_millis(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{epoch_ms % 1000:03d}Z"


def booking_from_user_data(user_data: Any) -> str | None:
    """The ``booking_id`` the lifecycle put in ``userData`` (a JSON object), if any."""
    if isinstance(user_data, dict):
        value = user_data.get("booking_id")
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def _int(record: Mapping[str, str], name: str) -> int | None:
    value = record.get(name)
    return int(value) if value not in (None, "") else None


def _str(record: Mapping[str, str], name: str) -> str | None:
    value = record.get(name)
    return value if value else None


def _upload_time(record: Mapping[str, str]) -> str | None:
    upload_ms = _int(record, "upload_ms")
    if upload_ms is not None:
        return iso_millis(upload_ms)
    text = _str(record, "upload_time")
    if text is None:
        return None
    try:
        return iso_millis(int(parse_epoch_or_iso(text).timestamp() * 1000))
    except ValueError:
        return text


def _file_type(record: Mapping[str, str]) -> str | None:
    given = _str(record, "file_type")
    if given:
        return given
    path = record.get("download_url", "").split("?", 1)[0].rsplit("/", 1)[-1]
    return path.rsplit(".", 1)[1].lower() if "." in path else None


def build_message(
    record: Mapping[str, str],
    *,
    message_id: str,
    source: str,
    discovered_at_ms: int,
    room_id: str | None = None,
    booking_ids: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``recording.v1`` body of a final file.

    ``room_id`` and ``booking_ids`` come from correlation when the record itself has no room.
    """
    status = record_status(record)
    if status not in FileStatus.FINAL:
        raise ValueError("only a file with a final status (2 or 3) has a message")
    user_data = user_data_value(record.get("user_data"))
    bookings = list(dict.fromkeys(b for b in booking_ids if b))
    booking_id = booking_from_user_data(user_data) or (bookings[0] if bookings else None)
    if booking_id and booking_id not in bookings:
        bookings.insert(0, booking_id)
    start = _int(record, "start_time")
    end = _int(record, "end_time")
    return {
        "schema": SCHEMA,
        "message_id": message_id,
        "file_id": _str(record, "file_id"),
        "download_url": record["download_url"],
        "room_id": _str(record, "room_id") or room_id,
        "file_name": _str(record, "file_name"),
        "file_size": _int(record, "file_size"),
        "file_type": _file_type(record),
        "status": status,
        "type": _str(record, "type"),
        "media_type": _str(record, "media_type"),
        "user_id": _str(record, "user_id"),
        "start_time": iso_seconds(start) if start is not None else None,
        "end_time": iso_seconds(end) if end is not None else None,
        "duration_s": _int(record, "duration_s"),
        "upload_time": _upload_time(record),
        "user_data": user_data,
        "booking_id": booking_id,
        "booking_ids": bookings,
        "source": source,
        "discovered_at": iso_millis(discovered_at_ms),
    }

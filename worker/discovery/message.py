"""The downstream message, ``recording.v1``: one per recording file, built from its record.

Field names are snake_case and stable; a field a source did not tell us is ``null``. Times are
ISO 8601 UTC (``Z``): ``start_time``/``end_time`` to the second, ``upload_time`` and
``discovered_at`` to the millisecond. ``message_id`` is the file's id (a hash of its normalised
download URL): the same file always gets the same id, so consumers can drop a redelivery.

One JSON type per field whatever the source: ``status`` is a number (2 or 3: the time and room
lists give ``filestatus`` as a number or digits, the callback implies 2), ``type`` a string
(``"1"``..``"3"``: the callback gives a string or a number, the lists do not give it) or null.
``file_id`` is always a string: the vendor's ``fileid`` when a room look-up gave one
(``file_id_source: "vendor"``), else the download URL's file name without its extension
(``"url"``; the vendor names its files after the id, so the two agree where both are known).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from worker.anyrtc.models import FileStatus, parse_epoch_or_iso
from worker.discovery.record import record_status, user_data_value

__all__ = [
    "ROUTING_KEYS",
    "SCHEMA",
    "booking_from_user_data",
    "build_message",
    "file_id",
    "routing_key",
]

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


def _url_file(download_url: str) -> str:
    """The last non-empty path segment of a URL (no query or fragment), "" when there is none."""
    path = download_url.split("#", 1)[0].split("?", 1)[0]
    if "://" in path:
        path = path.split("://", 1)[1].partition("/")[2]
    return next((part for part in reversed(path.split("/")) if part), "")


def file_id(record: Mapping[str, str], message_id: str) -> tuple[str, str]:
    """``(file_id, file_id_source)``: the vendor's ``fileid``, else the URL's file stem.

    A URL without a file name (never seen from the vendor) falls back to ``message_id``, so
    ``file_id`` is never null.
    """
    given = _str(record, "file_id")
    if given:
        return given, "vendor"
    name = _url_file(record.get("download_url", ""))
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return (stem or message_id), "url"


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
    fid, fid_source = file_id(record, message_id)
    return {
        "schema": SCHEMA,
        "message_id": message_id,
        "file_id": fid,
        "file_id_source": fid_source,
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

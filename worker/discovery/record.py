"""What one source says about a file (an :class:`Observation`) and how sightings merge.

A file is seen by up to three sources: the vendor's callback, the time list (poll) and a room
look-up. Each tells part of the story; :func:`merge` folds them into one record of strings (the
Redis hash) with two rules that make any order of sightings end in the same place:

* the status only moves forward (0 -> 1 -> 2|3) and a final status never changes;
* every other field is filled by the first source that knows it and never overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from worker.anyrtc.models import CallbackPayload, FileStatus, VodFile

__all__ = [
    "SOURCES",
    "Observation",
    "has_callback",
    "is_final",
    "merge",
    "record_status",
    "user_data_value",
]

SOURCES = ("callback", "poll", "room")

# Fields filled once, by whichever source knows them first.
_FILL_FIELDS = (
    "identity",
    "download_url",
    "file_id",
    "room_id",
    "file_name",
    "file_size",
    "file_type",
    "type",
    "media_type",
    "user_id",
    "start_time",
    "end_time",
    "duration_s",
    "upload_time",
    "upload_ms",
    "user_data",
)


@dataclass(frozen=True)
class Observation:
    """One sighting of a file by one source; ``None`` means "this source does not say"."""

    identity: str
    download_url: str
    source: str
    seen_ms: int
    status: int | None = None
    file_id: str | None = None
    room_id: str | None = None
    file_name: str | None = None
    file_size: int | None = None
    file_type: str | None = None
    type: str | None = None
    media_type: str | None = None
    user_id: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    duration_s: int | None = None
    upload_time: str | None = None
    upload_ms: int | None = None
    user_data: str | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {self.source!r}")

    @classmethod
    def from_callback(cls, payload: CallbackPayload, seen_ms: int) -> Observation:
        """A callback: the vendor only calls back once a file transcoded, so status 2."""
        return cls(
            identity=payload.identity,
            download_url=payload.download_url,
            source="callback",
            seen_ms=seen_ms,
            status=FileStatus.DONE,
            room_id=payload.group_id or None,
            file_name=payload.file_name or None,
            file_size=payload.file_size,
            type=payload.type,
            media_type=payload.media_type or None,
            user_id=payload.user_id or None,
            start_time=int(payload.start_time.timestamp()) if payload.start_time else None,
            end_time=int(payload.end_time.timestamp()) if payload.end_time else None,
            duration_s=payload.duration,
            user_data=payload.user_data or None,
        )

    @classmethod
    def from_vod(cls, file: VodFile, source: str, seen_ms: int) -> Observation:
        """A file of getVodListByTime (``poll``) or getVodInfoByRoomId (``room``)."""
        return cls(
            identity=file.identity,
            download_url=file.download_url,
            source=source,
            seen_ms=seen_ms,
            status=file.file_status,
            file_id=file.file_id or None,
            room_id=file.room_id or None,
            file_size=file.file_size,
            file_type=file.file_type or None,
            start_time=file.start_time,
            end_time=file.end_time,
            duration_s=file.file_duration,
            upload_time=file.upload_time or None,
            upload_ms=file.upload_timestamp_ms,
        )

    def as_fields(self) -> dict[str, str]:
        """The non-empty fields as strings (what a Redis hash holds)."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and value != "":
                out[f.name] = str(value)
        return out


def record_status(record: Mapping[str, str]) -> int | None:
    """The merged status of a record (None before any source gave one)."""
    value = record.get("status", "")
    return int(value) if value not in ("", None) else None


def is_final(record: Mapping[str, str]) -> bool:
    return record_status(record) in FileStatus.FINAL


def has_callback(record: Mapping[str, str]) -> bool:
    """Whether the file's callback (the only source of type, name, user, media type) came."""
    return bool(record.get("callback_ms"))


def merge(record: Mapping[str, str], obs: Observation) -> dict[str, str]:
    """The record after ``obs``: a new dict; ``record`` is left as it was."""
    merged = dict(record)
    seen = obs.as_fields()
    for name in _FILL_FIELDS:
        if not merged.get(name) and seen.get(name):
            merged[name] = seen[name]
    merged.setdefault("first_source", obs.source)
    merged.setdefault("first_seen_ms", str(obs.seen_ms))
    if obs.source == "callback":
        # Whether the callback came is what a final file found by poll or look-up waits for.
        merged.setdefault("callback_ms", str(obs.seen_ms))
    old = record_status(record)
    new = obs.status
    if new is not None and old not in FileStatus.FINAL and (old is None or new >= old):
        merged["status"] = str(new)
        if new in FileStatus.FINAL:
            merged["final_source"] = obs.source
            merged["final_seen_ms"] = str(obs.seen_ms)
    return merged


def user_data_value(raw: str | None) -> Any:
    """``userData`` decoded when it is JSON, else the string as given (None when empty)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw

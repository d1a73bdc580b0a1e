"""README's `recording.v1` and `booking.v1` tables and JSON examples against the code: the same
fields in the same order, and every value of the type its row names."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schedules.recording_log import RecordingSession
from tests.support.readme import schema_example, schema_table
from worker.anyrtc.models import CallbackPayload, VodFile
from worker.discovery.booking_message import build_booking_message
from worker.discovery.message import build_message
from worker.discovery.missing_message import build_missing_message
from worker.discovery.record import Observation, merge

URL = "http://vod.anyrtc.cn:10090/tmix/S3EDRhaQo4pqUBO3a4Tu.mp4"


def _of_type(value: Any, documented: str) -> bool:
    """Whether a JSON value is of a README type ("string", "number or null", "any", ...)."""
    kinds = {
        "string": lambda v: isinstance(v, str),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "null": lambda v: v is None,
        "object": lambda v: isinstance(v, dict),
        "array of strings": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "any": lambda v: True,
    }
    return any(kinds[kind](value) for kind in documented.split(" or "))


def _recording_messages() -> list[dict[str, Any]]:
    listed = VodFile.model_validate({"filestatus": "2", "download_url": URL, "filesize": 9})
    by_room = VodFile.model_validate(
        {"filestatus": 3, "download_url": URL, "fileid": "F", "room_id": "r"}
    )
    callback = CallbackPayload.model_validate(
        {"type": 2, "groupId": "r", "userId": "u1", "mediaType": "audio", "fileName": "a.mp4",
         "downloadUrl": URL, "startTime": "1563445166", "endTime": "1563445361",
         "userData": '{"booking_id": "bk-1"}'}
    )  # fmt: skip
    poll_only = merge({}, Observation.from_vod(listed, "poll", 1))
    complete = merge(poll_only, Observation.from_callback(callback, 2))
    looked_up = merge({}, Observation.from_vod(by_room, "room", 3))
    return [
        build_message(record, message_id="m", source=source, discovered_at_ms=5, booking_ids=ids)
        for record, source, ids in [
            (poll_only, "poll", []),
            (complete, "callback", ["bk-0"]),
            (looked_up, "room", []),
        ]
    ]


def _booking_messages() -> list[dict[str, Any]]:
    base = {
        "message_id": "bk:b-1:1:1", "at": 1563445166.0, "booking_id": "b-1", "room_id": "r",
        "start_at": "1563445166", "end_at": "1563448766", "started_at": "", "stopped_at": "",
        "params": json.dumps({"user_data": {"k": 1}}),
        "request": json.dumps({"kwargs": {"updated_at": "2019-07-18T10:00:00+08:00"}}),
    }  # fmt: skip
    failed = {
        "state": "failed", "reason": "start failed", "code": "1007", "message": "ip not allowed",
        "tried": json.dumps({"call": "start", "attempts": 1, "last_code": "1007"}),
    }  # fmt: skip
    recording = {"state": "recording", "started_at": "1563445167.5", "reason": "vendor: ok"}
    return [build_booking_message({**base, **facts}) for facts in (failed, recording)]


def _missing_messages() -> list[dict[str, Any]]:
    session = RecordingSession(
        "r:1563445167500", "r", 1563445167.5, 1563448766.8, ("b-1",), '{"booking_id": "b-0"}'
    )
    bare = RecordingSession("r:1", "r", 1563445167.5, 1563448766.8)
    lookup = {"at_ms": 1, "from_ms": 0, "to_ms": 1, "outcome": "no_file", "files_listed": 0}
    refused = {**lookup, "outcome": "failed", "code": "281", "files_listed": None}
    return [
        build_missing_message(s, lk, missing_after_s=1020, detected_at_ms=2)
        for s, lk in ((session, lookup), (bare, refused))
    ]


@pytest.mark.parametrize(
    ("schema", "built"),
    [
        ("recording.v1", _recording_messages),
        ("booking.v1", _booking_messages),
        ("recording.missing.v1", _missing_messages),
    ],
)
def test_readme_table_and_example_are_what_the_code_builds(schema: str, built: Any) -> None:
    table = schema_table(schema)
    example = schema_example(schema)
    names = [name for name, _ in table]
    assert len(set(names)) == len(names), "a field documented twice"
    assert list(example) == names  # the example shows every field, in the table's order
    types = dict(table)
    for body in [example, *built()]:
        assert list(body) == names
        wrong = {k: v for k, v in body.items() if not _of_type(v, types[k])}
        assert wrong == {}, f"values not of the documented type in {body['schema']}"
    assert example["schema"] == schema


def test_the_type_checker_can_say_no() -> None:
    assert not _of_type(2, "string or null")
    assert not _of_type("2", "number")
    assert not _of_type(["a", 1], "array of strings")
    assert _of_type(None, "object or null") and _of_type([1], "any")

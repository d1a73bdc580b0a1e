"""``file_id`` is always set and says where it came from; ``status`` and ``type`` have one JSON
type each whichever source (callback, time list, room list) told them."""

from __future__ import annotations

from typing import Any

import pytest

from worker.anyrtc.models import CallbackPayload, VodFile
from worker.discovery.message import build_message, file_id
from worker.discovery.record import Observation, has_callback, merge

URL = "http://vod.anyrtc.cn:10090/tmix/S3EDRhaQo4pqUBO3a4Tu.mp4"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (URL, "S3EDRhaQo4pqUBO3a4Tu"),
        ("https://h/a/b/file.name.mp4?sig=1.2#x.y", "file.name"),
        ("http://h/a/rec/", "rec"),  # a trailing slash: the last named segment
        ("http://h/a/noext", "noext"),
        ("http://h:80", "mid"),  # no file name at all: the message id, never null
    ],
)
def test_file_id_from_the_url_when_no_look_up_gave_one(url: str, expected: str) -> None:
    assert file_id({"download_url": url}, "mid") == (expected, "url")


def test_the_vendors_fileid_wins_and_says_so() -> None:
    assert file_id({"download_url": URL, "file_id": "F1"}, "mid") == ("F1", "vendor")


def _callback(type_value: Any) -> Observation:
    payload = CallbackPayload.model_validate(
        {"type": type_value, "groupId": "r1", "downloadUrl": URL, "mediaType": "audio/video"}
    )
    return Observation.from_callback(payload, seen_ms=5)


def _listed(status: Any, *, by_room: bool) -> Observation:
    item: dict[str, Any] = {"filestatus": status, "download_url": URL}
    if by_room:
        item |= {"fileid": "S3EDRhaQo4pqUBO3a4Tu", "room_id": "r1"}
    return Observation.from_vod(VodFile.model_validate(item), "room" if by_room else "poll", 1)


def _body(*observations: Observation) -> dict[str, Any]:
    record: dict[str, str] = {}
    for seen in observations:
        record = merge(record, seen)
    return build_message(record, message_id="m", source=observations[-1].source, discovered_at_ms=0)


@pytest.mark.parametrize("type_value", [1, "1"])
def test_type_is_a_string_whether_the_callback_sent_a_number_or_a_string(type_value: Any) -> None:
    body = _body(_callback(type_value))
    assert body["type"] == "1" and isinstance(body["type"], str)
    assert body["status"] == 2 and isinstance(body["status"], int)


@pytest.mark.parametrize("status", [2, "2", 3, "3"])
@pytest.mark.parametrize("by_room", [False, True])
def test_status_is_a_number_whether_a_list_sent_a_number_or_digits(
    status: Any, by_room: bool
) -> None:
    body = _body(_listed(status, by_room=by_room))
    assert body["status"] == int(status) and type(body["status"]) is int
    assert body["type"] is None  # the lists do not tell it
    assert body["file_id_source"] == ("vendor" if by_room else "url")
    assert body["file_id"] == "S3EDRhaQo4pqUBO3a4Tu"


def test_a_callback_after_the_poll_fills_the_callback_fields_and_is_remembered() -> None:
    record = merge({}, _listed(2, by_room=False))
    assert not has_callback(record)
    record = merge(record, _callback("2"))
    assert has_callback(record) and record["callback_ms"] == "5"
    body = build_message(record, message_id="m", source="callback", discovered_at_ms=0)
    assert (body["type"], body["media_type"], body["status"]) == ("2", "audio/video", 2)

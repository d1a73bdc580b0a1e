"""The recording.v1 message: every field, snake_case, ISO 8601 UTC, stable id."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.discovery.keys import DiscoveryKeys, file_key_id, hash_tag
from worker.discovery.message import (
    SCHEMA,
    booking_from_user_data,
    build_message,
    routing_key,
)

FIELDS = {
    "schema", "message_id", "file_id", "file_id_source", "download_url", "room_id", "file_name",
    "file_size", "file_type", "status", "type", "media_type", "user_id", "start_time", "end_time",
    "duration_s", "upload_time", "user_data", "booking_id", "booking_ids", "source",
    "discovered_at",
}  # fmt: skip

RECORD = {
    "identity": "http://vod.example/a/x.mp4",
    "download_url": "http://vod.example/a/x.mp4",
    "status": "2",
    "room_id": "room-1",
    "file_name": "ar_room-1_20240101_ab12.mp4",
    "file_size": "1024",
    "type": "1",
    "media_type": "audio/video",
    "start_time": "1559208681",
    "end_time": "1559208696",
    "duration_s": "15",
    "upload_ms": "1559145600123",
    "user_data": '{"booking_id": "bk-7", "x": [1]}',
}


def test_full_message() -> None:
    body = build_message(RECORD, message_id="m1", source="callback", discovered_at_ms=1559208700005)
    assert set(body) == FIELDS
    assert body["schema"] == SCHEMA == "recording.v1"
    assert body["start_time"] == "2019-05-30T09:31:21Z"
    assert body["end_time"] == "2019-05-30T09:31:36Z"
    assert body["upload_time"] == "2019-05-29T16:00:00.123Z"
    assert body["discovered_at"] == "2019-05-30T09:31:40.005Z"
    assert body["user_data"] == {"booking_id": "bk-7", "x": [1]}
    assert body["booking_id"] == "bk-7" and body["booking_ids"] == ["bk-7"]
    assert body["file_type"] == "mp4"  # from the URL when no listing said
    assert (body["status"], body["file_size"], body["duration_s"]) == (2, 1024, 15)
    assert body["user_id"] is None
    assert (body["file_id"], body["file_id_source"]) == ("x", "url")  # no look-up gave a fileid
    json.dumps(body)


def test_correlated_room_and_bookings_fill_in_when_the_record_has_none() -> None:
    record = {k: v for k, v in RECORD.items() if k not in ("room_id", "user_data")}
    body = build_message(
        record, message_id="m", source="poll", discovered_at_ms=0,
        room_id="r-9", booking_ids=["b2", "b3"],
    )  # fmt: skip
    assert body["room_id"] == "r-9" and body["booking_id"] == "b2"
    assert body["booking_ids"] == ["b2", "b3"] and body["user_data"] is None


def test_record_room_wins_over_correlation() -> None:
    body = build_message(RECORD, message_id="m", source="poll", discovered_at_ms=0, room_id="x")
    assert body["room_id"] == "room-1"


def test_upload_time_from_the_vendor_string_when_no_ms() -> None:
    record = {**RECORD, "upload_time": "2019-05-30T09:35:19.000Z"}
    del record["upload_ms"]
    body = build_message(record, message_id="m", source="poll", discovered_at_ms=0)
    assert body["upload_time"] == "2019-05-30T09:35:19.000Z"


def test_non_final_file_has_no_message() -> None:
    with pytest.raises(ValueError, match="final"):
        build_message({**RECORD, "status": "1"}, message_id="m", source="poll", discovered_at_ms=0)


def test_routing_keys() -> None:
    assert routing_key(2) == "recording.ready"
    assert routing_key(3) == "recording.failed"
    with pytest.raises(ValueError):
        routing_key(1)


def test_booking_from_user_data_only_takes_a_plain_id() -> None:
    assert booking_from_user_data({"booking_id": 12}) == "12"
    assert booking_from_user_data({"booking_id": True}) is None
    assert booking_from_user_data({"booking_id": ""}) is None
    assert booking_from_user_data("booking_id") is None


@given(st.text(min_size=1, max_size=200))
def test_file_ids_are_stable_hex(identity: str) -> None:
    fid = file_key_id(identity)
    assert fid == file_key_id(identity) and len(fid) == 32
    int(fid, 16)


def test_every_key_lives_under_the_prefix_hash_tag() -> None:
    keys = DiscoveryKeys("pfx")
    names = [
        keys.budget("a"), keys.poll_lock, keys.poll_running, keys.poll_watermark,
        keys.poll_cursor, keys.poll_retry,
        keys.file("f"), keys.follow, keys.seen, keys.transcode_est, keys.checks, keys.awaiting,
        keys.awaiting_room("r"), keys.lookup("r"), keys.outbox("f"), keys.outbox_pending,
        keys.rejects, keys.errors, keys.stats,
    ]  # fmt: skip
    assert hash_tag("pfx") == "{pfx}"
    assert all(n.startswith("{pfx}:disc:") for n in names)
    assert len(set(names)) == len(names)


@given(
    st.fixed_dictionaries(
        {"status": st.sampled_from(["2", "3"]), "download_url": st.just("http://h/x")},
        optional={
            "user_data": st.text(max_size=30),
            "start_time": st.integers(0, 2**33).map(str),
            "file_size": st.integers(0, 2**40).map(str),
            "upload_time": st.text(max_size=30),
        },
    )
)
def test_any_final_record_gives_a_json_message(record: dict[str, str]) -> None:
    body = build_message(record, message_id="m", source="poll", discovered_at_ms=0)
    assert set(body) == FIELDS
    assert routing_key(body["status"]) in ("recording.ready", "recording.failed")
    assert body["file_id"] == "x" and body["file_id_source"] == "url"
    json.loads(json.dumps(body))

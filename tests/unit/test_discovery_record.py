"""Observations and the merge rule: status only moves forward, fields are filled once."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.anyrtc.models import CallbackPayload, VodFile
from worker.discovery.record import Observation, is_final, merge, record_status, user_data_value

URL = "http://vod.example/anyrtc/abc.mp4"


def obs(source: str = "poll", status: int | None = 0, **fields: object) -> Observation:
    return Observation(
        identity=URL,
        download_url=URL,
        source=source,
        seen_ms=1,
        status=status,
        **fields,  # type: ignore[arg-type]
    )


observations = st.builds(
    Observation,
    identity=st.just(URL),
    download_url=st.just(URL),
    source=st.sampled_from(["callback", "poll", "room"]),
    seen_ms=st.integers(0, 2**42),
    status=st.none() | st.integers(0, 3),
    file_id=st.none() | st.text("abcXYZ09", min_size=1, max_size=8),
    room_id=st.none() | st.text("r0123", min_size=1, max_size=5),
    file_size=st.none() | st.integers(0, 10**9),
    user_data=st.none() | st.text(max_size=20),
)


def fold(items: list[Observation]) -> dict[str, str]:
    record: dict[str, str] = {}
    for item in items:
        record = merge(record, item)
    return record


def test_callback_maps_to_a_final_observation_with_its_room() -> None:
    payload = CallbackPayload.model_validate(
        {
            "type": "2",
            "mediaType": "audio/video",
            "userId": "u1",
            "groupId": "room-9",
            "startTime": "1521608787",
            "endTime": "1521608807",
            "fileName": "yyy.mp4",
            "fileSize": 65322,
            "duration": 20,
            "downloadUrl": "HTTP://WWW.anyrtc.io:80/yyy.mp4",
            "userData": '{"booking_id": "b-1"}',
        }
    )
    seen = Observation.from_callback(payload, 5)
    assert seen.status == 2 and seen.room_id == "room-9" and seen.source == "callback"
    assert seen.identity == "http://www.anyrtc.io/yyy.mp4"
    assert (seen.start_time, seen.end_time, seen.duration_s) == (1521608787, 1521608807, 20)
    assert seen.file_id is None


def test_listed_file_maps_with_file_id_when_the_room_query_gives_one() -> None:
    file = VodFile.model_validate(
        {
            "fileid": "S3ED",
            "filesize": 10,
            "filestatus": 1,
            "upload_timestamp": 1563445367,
            "room_id": "4PN9",
            "download_url": URL,
            "start_time": 1563445166,
            "end_time": 1563445361,
            "file_duration": 195,
        }
    )
    seen = Observation.from_vod(file, "room", 7)
    assert (seen.file_id, seen.room_id, seen.status) == ("S3ED", "4PN9", 1)
    assert seen.upload_ms == 1563445367000


def test_unknown_source_is_refused() -> None:
    with pytest.raises(ValueError, match="source"):
        obs(source="carrier-pigeon")


def test_status_moves_forward_and_records_who_saw_it_final() -> None:
    record = fold([obs(status=0), obs(status=1), obs("room", status=2, file_id="F")])
    assert record_status(record) == 2 and is_final(record)
    assert record["final_source"] == "room" and record["first_source"] == "poll"
    assert record["file_id"] == "F"
    assert record_status(merge(record, obs(status=0))) == 2
    assert record_status(merge(record, obs(status=3))) == 2  # a final status never changes


def test_stale_listing_does_not_move_status_back() -> None:
    assert record_status(fold([obs(status=1), obs(status=0)])) == 1


def test_user_data_is_parsed_only_when_json() -> None:
    assert user_data_value('{"a": 1}') == {"a": 1}
    assert user_data_value("plain") == "plain"
    assert user_data_value("") is None and user_data_value(None) is None


@given(st.lists(observations, max_size=6), observations)
def test_merge_is_idempotent(history: list[Observation], extra: Observation) -> None:
    once = merge(fold(history), extra)
    assert merge(once, extra) == once


@given(st.lists(observations, min_size=1, max_size=6))
def test_a_final_status_is_sticky_and_fields_never_vanish(history: list[Observation]) -> None:
    record: dict[str, str] = {}
    for item in history:
        after = merge(record, item)
        for name, value in record.items():
            if name != "status":
                assert after[name] == value  # filled once, never overwritten or emptied
        if is_final(record):
            assert after["status"] == record["status"]
        record = after


@given(st.lists(observations, min_size=1, max_size=5))
def test_the_first_final_status_wins_in_any_order_of_agreeing_sources(
    history: list[Observation],
) -> None:
    # Sources that agree on everything: every order ends in the same record but for "who first".
    finals = {o.status for o in history if o.status in (2, 3)}
    results = {
        record_status(fold(list(order)))
        for order in itertools.islice(itertools.permutations(history), 24)
    }
    if len(finals) == 1:
        assert results == finals

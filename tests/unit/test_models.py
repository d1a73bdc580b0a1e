import contextlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.support.strategies import json_values
from worker.anyrtc.models import (
    MAX_EPOCH_MS,
    CallbackPayload,
    RecordResult,
    VodFile,
    VodPage,
    epoch_ms,
    normalize_download_url,
    parse_epoch_or_iso,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "spec_examples"


def _example(name: str) -> str:
    return (EXAMPLES / name).read_text(encoding="utf-8")


def test_list_by_time_example_is_not_strict_json_in_the_guide() -> None:
    # The guide's example has a trailing comma after the last file: a documentation typo.
    with pytest.raises(json.JSONDecodeError):
        json.loads(_example("list_by_time.json"))


def test_list_by_time_example_parses() -> None:
    text = re.sub(r",(\s*[\]}])", r"\1", _example("list_by_time.json"))
    page = VodPage.from_payload(json.loads(text), page_num=2, page_max=5)
    assert page.total == 12
    assert page.message == "get video list success"
    assert page.request_id == 1559557594286
    assert [f.file_duration for f in page.files] == [15, 63]
    first = page.files[0]
    assert first.file_id is None and first.room_id is None
    assert first.file_size == 957271
    assert first.file_status == 2 and first.is_final
    assert first.upload_timestamp_ms == 1559145600000
    assert first.start_time == 1559208681
    assert first.identity == "http://192.168.199.219:8080/anyrtc/6zDIxYEI6wYSQxjk6EdX.mp4"
    assert page.has_more  # page 2 of 5 per page, 12 in all


def test_list_by_room_example_parses_verbatim() -> None:
    page = VodPage.from_payload(json.loads(_example("list_by_room.json")))
    assert page.total == 1
    (file,) = page.files
    assert file.file_id == "S3EDRhaQo4pqUBO3a4Tu"
    assert file.room_id == "4PN9lMlvFV"
    assert file.upload_timestamp_ms == 1563445367404
    assert file.file_size == 13958524
    assert file.file_duration == 195


def test_callback_example_parses_verbatim() -> None:
    body = json.loads(_example("callback.json"))
    cb = CallbackPayload.model_validate(body)
    assert cb.type == "2"
    assert cb.media_type == "audio/video"
    assert cb.group_id == "123888"
    assert cb.user_id == "123456"
    assert cb.file_size == 65322 and cb.duration == 20
    assert cb.start_time == datetime.fromtimestamp(1521608787, tz=UTC)
    assert cb.end_time == datetime.fromtimestamp(1521608807, tz=UTC)
    assert json.loads(cb.user_data)["uNamer"] == "李席"
    assert cb.identity == "http://www.anyrtc.io/yyy.mp4"


def test_record_ok_and_callback_reply_examples() -> None:
    assert RecordResult.model_validate(json.loads(_example("record_ok.json"))).ok
    reply = json.loads(_example("callback_reply.json"))
    assert reply["code"] == 0 and reply["success"] is True


def test_record_result_other_than_ok_is_failure() -> None:
    assert not RecordResult(result="room is already recording").ok
    assert not RecordResult(result="OK").ok


def test_table_variant_msg_and_conent_and_flat_cnt() -> None:
    payload = {
        "code": 200,
        "msg": "from table",
        "conent": {"data": [{"filestatus": "1", "download_url": "http://x/a.mp4"}], "cnt": "1"},
    }
    page = VodPage.from_payload(payload)
    assert page.message == "from table"
    assert page.total == 1
    assert page.files[0].file_status == 1


def test_upload_timestamp_in_seconds_and_strings_are_normalised() -> None:
    file = VodFile.model_validate(
        {
            "filestatus": 2,
            "download_url": "http://x/a.mp4",
            "upload_timestamp": "1559145600",
            "start_time": "1559208681000",
            "end_time": 1559208696,
            "filesize": "12",
        }
    )
    assert file.upload_timestamp_ms == 1559145600000
    assert file.start_time == 1559208681
    assert file.end_time == 1559208696
    assert file.file_size == 12


def test_missing_content_means_empty_page() -> None:
    page = VodPage.from_payload({"code": 200, "message": "ok"})
    assert page.files == [] and page.total == 0


@pytest.mark.parametrize(
    "body",
    [
        {"type": "2", "groupId": "r", "downloadUrl": ""},
        {"type": "9", "groupId": "r", "downloadUrl": "http://x/a.mp4"},
        {"type": "1", "downloadUrl": "http://x/a.mp4"},
        {"type": "1", "groupId": "r", "downloadUrl": "ftp://x/a.mp4"},
        {"type": "1", "groupId": "r", "downloadUrl": "http://x/a.mp4", "fileSize": "big"},
        {"type": "1", "groupId": "r", "downloadUrl": "http://x/a.mp4", "startTime": "yesterday"},
        {"type": "1", "groupId": "r", "downloadUrl": "http://x/a.mp4", "startTime": True},
        # Numbers that are not dates: once OverflowError, which pydantic does not catch.
        {"type": "1", "groupId": "r", "downloadUrl": "http://x/a.mp4", "startTime": "1e999"},
        {"type": "1", "groupId": "r", "downloadUrl": "http://x/a.mp4", "startTime": "inf"},
        {"type": "1", "groupId": "r", "downloadUrl": "http://x/a.mp4", "startTime": 1e300},
        {"type": "1", "groupId": "r", "downloadUrl": "http://x/a.mp4", "endTime": "-5"},
    ],
)
def test_bad_callbacks_are_rejected(body: dict) -> None:
    with pytest.raises(ValidationError):
        CallbackPayload.model_validate(body)


def test_callback_accepts_iso_times_and_int_type() -> None:
    cb = CallbackPayload.model_validate(
        {
            "type": 1,
            "groupId": "r",
            "downloadUrl": "http://x/a.mp4",
            "startTime": "2026-11-25T14:00:00+08:00",
            "endTime": 1764050400,
        }
    )
    assert cb.type == "1"
    assert cb.start_time == datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
    assert cb.end_time == datetime.fromtimestamp(1764050400, tz=UTC)


def test_naive_iso_time_is_rejected() -> None:
    with pytest.raises(ValueError, match="offset"):
        parse_epoch_or_iso("2026-11-25T14:00:00")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("HTTP://VOD.Example.com:80/a/B.mp4#x", "http://vod.example.com/a/B.mp4"),
        (" https://h.example:443/x.mp4 ", "https://h.example/x.mp4"),
        ("http://h.example:8080/x.mp4?sig=1", "http://h.example:8080/x.mp4?sig=1"),
    ],
)
def test_normalize_download_url(given: str, expected: str) -> None:
    assert normalize_download_url(given) == expected


@given(st.integers(min_value=10**9, max_value=4 * 10**9))
def test_epoch_unit_detected_by_magnitude(seconds: int) -> None:
    assert epoch_ms(seconds) == seconds * 1000
    assert epoch_ms(seconds * 1000 + 7) == seconds * 1000 + 7


def test_one_bad_file_entry_does_not_hide_the_others() -> None:
    payload = {
        "code": 200,
        "content": {
            "data": [
                {"filestatus": 2, "download_url": "http://x/a.mp4"},
                {"filestatus": "done", "download_url": "http://x/b.mp4"},
                {"filestatus": 1},
                {"filestatus": 0, "download_url": "http://x/c.mp4"},
            ],
            "cnt": {"cnt": 4},
        },
    }
    page = VodPage.from_payload(payload)
    assert [f.identity for f in page.files] == ["http://x/a.mp4", "http://x/c.mp4"]
    assert page.total == 4
    assert len(page.invalid) == 2
    assert page.invalid[0].startswith("entry 1: filestatus:")
    assert page.invalid[1].startswith("entry 2: download_url:")


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_epoch_ms_is_a_date_or_a_value_error(value: float) -> None:
    try:
        ms = epoch_ms(value)
    except ValueError:
        return
    assert 0 <= ms <= MAX_EPOCH_MS
    datetime.fromtimestamp(ms / 1000, tz=UTC)  # representable


def test_an_entry_with_an_impossible_time_is_skipped_not_raised() -> None:
    payload = {
        "code": 200,
        "content": {
            "data": [
                {"filestatus": 2, "download_url": "http://x/a.mp4", "upload_timestamp": "inf"},
                {"filestatus": 2, "download_url": "http://x/b.mp4", "start_time": "1e300"},
                {"filestatus": 2, "download_url": "http://x/c.mp4", "start_time": 1764000000},
            ],
            "cnt": {"cnt": 3},
        },
    }
    page = VodPage.from_payload(payload)
    assert [f.identity for f in page.files] == ["http://x/c.mp4"]
    assert page.invalid[0].startswith("entry 0: upload_timestamp:")
    assert page.invalid[1].startswith("entry 1: start_time:")


JSON = json_values(max_leaves=10)
CALLBACK_KEYS = ("type", "mediaType", "userId", "groupId", "startTime", "endTime", "fileName",
                 "fileSize", "duration", "downloadUrl", "userData")  # fmt: skip
FILE_KEYS = ("filesize", "filestatus", "filetype", "upload_time", "upload_timestamp",
             "download_url", "start_time", "end_time", "file_duration", "room_id")  # fmt: skip


ODD_COUNTS = [float("inf"), float("-inf"), float("nan"), True, -1, 3.5, "3.5", "x", [2], {}]


@pytest.mark.parametrize("cnt", ODD_COUNTS)
def test_a_count_that_is_not_a_whole_number_is_a_value_error(cnt: object) -> None:
    with pytest.raises(ValueError, match="cnt must be a whole number"):
        VodPage.from_payload({"code": 200, "content": {"data": [], "cnt": {"cnt": cnt}}})


@pytest.mark.parametrize(("cnt", "total"), [(7, 7), ("7", 7), (7.0, 7), ("", 0), (None, 0)])
def test_counts_as_the_vendor_writes_them(cnt: object, total: int) -> None:
    page = VodPage.from_payload({"code": 200, "content": {"data": [], "cnt": cnt}})
    assert page.total == total


@given(st.dictionaries(st.sampled_from(CALLBACK_KEYS), JSON))
def test_any_json_callback_is_a_payload_or_a_validation_error(body: dict) -> None:
    """The web process answers 422 for ValidationError; anything else would be a 500 with no
    reject entry kept."""
    base = {"type": "1", "groupId": "r", "downloadUrl": "http://x/a.mp4"}
    with contextlib.suppress(ValidationError):
        CallbackPayload.model_validate({**base, **body})


@given(
    st.lists(st.dictionaries(st.sampled_from(FILE_KEYS), JSON) | JSON, max_size=4),
    st.one_of(JSON, st.dictionaries(st.just("cnt"), JSON), st.sampled_from(ODD_COUNTS)),
)
def test_any_json_file_list_is_a_page_or_a_value_error(data: list, cnt: object) -> None:
    """The client turns ValueError (and TypeError) into a ProtocolError; an entry that cannot
    be read is skipped and named, never raised."""
    payload = {"code": 200, "content": {"data": data, "cnt": cnt}}
    try:
        page = VodPage.from_payload(payload)
    except (ValueError, TypeError):
        return
    assert len(page.files) + len(page.invalid) == len(data)

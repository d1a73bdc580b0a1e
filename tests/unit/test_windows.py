"""Pure booking logic: time parsing, validation, window and backoff maths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schedules.letter_values import clipped
from schedules.windows import (
    MAX_USER_DATA_CHARS,
    backoff_s,
    parse_time,
    start_due,
    stop_due,
    validate_booking,
)
from tests.support.strategies import json_values
from worker.errors import InvalidBooking

NOW = 1_900_000_000.0
MAX = 12 * 3600.0


def _valid(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "booking_id": "b-1",
        "room_id": "room-1",
        "start_at": NOW + 60,
        "end_at": NOW + 3600,
    }
    base.update(changes)
    return base


def _problems(**changes: object) -> str:
    with pytest.raises(InvalidBooking) as info:
        validate_booking(_valid(**changes), now=NOW, max_booking_s=MAX)
    return str(info.value)


# -- parse_time ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_900_000_000, 1_900_000_000.0),
        (1_900_000_000.25, 1_900_000_000.25),
        ("1900000000", 1_900_000_000.0),
        (" 1900000000.5 ", 1_900_000_000.5),
        ("2030-01-31T14:00:00+01:00", datetime(2030, 1, 31, 13, tzinfo=UTC).timestamp()),
        ("2030-01-31T13:00:00Z", datetime(2030, 1, 31, 13, tzinfo=UTC).timestamp()),
        ("2030-01-31 13:00:00.5+00:00", datetime(2030, 1, 31, 13, tzinfo=UTC).timestamp() + 0.5),
    ],
)
def test_parse_time_accepts_iso_with_offset_and_epoch_s(value: object, expected: float) -> None:
    assert parse_time(value) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("2030-01-31T14:00:00", "no UTC offset"),
        (1_900_000_000_000, "milliseconds"),
        ("1900000000000", "milliseconds"),
        (True, "boolean"),
        (None, "not NoneType"),
        ([1], "not list"),
        ("", "must not be empty"),
        ("tomorrow", "neither ISO 8601"),
        (float("nan"), "finite"),
        (-5, "positive"),
    ],
)
def test_parse_time_rejects_with_a_reason(value: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_time(value, "start_at")


@given(
    st.datetimes(
        min_value=datetime(2001, 1, 1),
        max_value=datetime(2999, 12, 31),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
        ),
    )
)
def test_parse_time_iso_round_trips(moment: datetime) -> None:
    assert parse_time(moment.isoformat()) == pytest.approx(moment.timestamp(), abs=1e-6)


@given(st.floats(min_value=1.0, max_value=9.9e10, allow_nan=False))
def test_parse_time_epoch_seconds_are_kept(value: float) -> None:
    assert parse_time(value) == value
    assert parse_time(repr(value)) == value


# -- validate_booking -----------------------------------------------------------------------------


def test_valid_booking_is_parsed() -> None:
    request = validate_booking(
        _valid(
            start_at="2031-01-31T14:00:00+01:00",
            end_at="2031-01-31T15:00:00+01:00",
            user_data={"course": "x"},
            name_rule="ar_{roomid}_{date}",
            path="rec/2030",
            room_type="Meet",
            updated_at="1800000000",
        ),
        now=NOW,
        max_booking_s=MAX,
    )
    assert request.end_at - request.start_at == 3600
    assert request.user_data == {"course": "x"}
    assert request.updated_at == 1_800_000_000.0
    assert request.params() == {
        "user_data": {"course": "x"},
        "name_rule": "ar_{roomid}_{date}",
        "path": "rec/2030",
        "room_type": "Meet",
    }


def test_start_in_the_past_is_allowed_while_the_end_is_ahead() -> None:
    request = validate_booking(_valid(start_at=NOW - 600), now=NOW, max_booking_s=MAX)
    assert request.start_at == NOW - 600


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"end_at": NOW + 30}, "end_at must be after start_at"),
        ({"start_at": NOW - 7200, "end_at": NOW - 60}, "end_at is not in the future"),
        ({"end_at": NOW + 60 + MAX + 1}, "MAX_BOOKING_S"),
        ({"name_rule": "{date}"}, "name_rule needs at least 2"),
        ({"name_rule": "ar_{bogus}_{date}"}, "unknown placeholder"),
        ({"user_data": 5}, "user_data must be a string or a JSON object"),
        ({"user_data": ["a"]}, "user_data must be a string or a JSON object"),
        ({"user_data": "x" * (MAX_USER_DATA_CHARS + 1)}, "at most"),
        ({"user_data": {"t": {1, 2}}}, "not JSON-serialisable"),
        ({"start_at": "2030-01-31T14:00:00"}, "no UTC offset"),
        ({"end_at": None}, "end_at is required"),
        ({"booking_id": ""}, "booking_id must not be empty"),
        ({"booking_id": 42}, "booking_id must be a string"),
        ({"room_id": "a\nb"}, "control characters"),
        ({"path": "/etc"}, "relative storage path"),
        ({"path": "a/../b"}, "relative storage path"),
        ({"room_type": ""}, "room_type must be a non-empty string"),
        ({"updated_at": "yesterday"}, "updated_at"),
    ],
)
def test_each_bad_input_has_its_own_error(changes: dict[str, object], fragment: str) -> None:
    assert fragment in _problems(**changes)


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(InvalidBooking) as info:
        validate_booking(
            {"booking_id": "", "room_id": None, "start_at": "x", "end_at": NOW + 1},
            now=NOW,
            max_booking_s=MAX,
        )
    assert len(info.value.problems) == 3  # type: ignore[attr-defined]


@given(
    start=st.floats(min_value=NOW - 3600, max_value=NOW + 86_400),
    length=st.floats(min_value=1.0, max_value=MAX),
)
def test_any_window_within_the_rules_is_valid(start: float, length: float) -> None:
    end = start + length
    if end <= NOW or end <= start:
        return
    request = validate_booking(_valid(start_at=start, end_at=end), now=NOW, max_booking_s=MAX)
    assert (request.start_at, request.end_at) == (start, end)


# -- window and backoff maths ---------------------------------------------------------------------


def test_lead_and_tail_widen_the_window() -> None:
    assert start_due(1000.0, 30.0) == 970.0
    assert stop_due(2000.0, 15.0) == 2015.0
    assert (start_due(1000.0, 0.0), stop_due(2000.0, 0.0)) == (1000.0, 2000.0)


@given(
    attempt=st.integers(min_value=1, max_value=500),
    base=st.floats(min_value=0.01, max_value=10.0),
    cap=st.floats(min_value=0.01, max_value=3600.0),
    draw=st.floats(min_value=0.0, max_value=0.999999),
)
def test_backoff_stays_within_half_and_all_of_the_capped_exponential(
    attempt: int, base: float, cap: float, draw: float
) -> None:
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 62))
    delay = backoff_s(attempt, base, cap, draw)
    assert ceiling / 2 <= delay <= ceiling
    assert delay <= cap


@given(
    attempt=st.integers(min_value=1, max_value=60),
    base=st.floats(min_value=0.01, max_value=10.0),
    cap=st.floats(min_value=0.01, max_value=3600.0),
)
def test_backoff_never_shrinks_from_one_attempt_to_the_next(
    attempt: int, base: float, cap: float
) -> None:
    assert backoff_s(attempt + 1, base, cap, 0.0) >= backoff_s(attempt, base, cap, 0.0)
    assert backoff_s(attempt + 1, base, cap, 0.999) >= backoff_s(attempt, base, cap, 0.999)


@pytest.mark.parametrize(("attempt", "draw"), [(0, 0.5), (1, 1.0), (1, -0.1)])
def test_backoff_rejects_out_of_range_arguments(attempt: int, draw: float) -> None:
    with pytest.raises(ValueError):
        backoff_s(attempt, 1.0, 60.0, draw)


JSON_VALUES = json_values(max_leaves=8)
FIELDS = ("booking_id", "room_id", "start_at", "end_at", "updated_at", "user_data", "name_rule",
          "path", "room_type")  # fmt: skip


@given(st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=len(FIELDS)))
def test_any_json_arguments_are_a_booking_or_an_invalid_booking(changes: dict) -> None:
    """Whatever a booking system sends (JSON can carry anything), the answer is a booking or
    InvalidBooking listing the problems: never another exception, which would crash the task
    instead of dead-lettering the event."""
    try:
        booking = validate_booking(_valid(**changes), now=NOW, max_booking_s=MAX)
    except InvalidBooking as exc:
        assert str(exc)
        return
    assert booking.start_at < booking.end_at


# -- hostile values (issue 13) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"booking_id": "b\ud800"}, "booking_id must be valid Unicode"),
        ({"user_data": {"k": "\udfff"}}, "user_data must be valid Unicode"),
        ({"path": "a/\ud800"}, "path must be at most"),
        ({"path": "p" * 1_000_000}, "path must be at most"),
        ({"room_type": "meet"}, "room_type 'meet' is not one of Meet"),
    ],
)
def test_hostile_values_are_refused_with_their_reason(changes: dict, needle: str) -> None:
    with pytest.raises(InvalidBooking, match=needle):
        validate_booking(
            _valid(**changes), now=NOW, max_booking_s=MAX, room_types=frozenset({"Meet"})
        )


def test_allowed_room_types_pass() -> None:
    booking = validate_booking(
        _valid(room_type="Live"), now=NOW, max_booking_s=MAX, room_types=frozenset({"Meet", "Live"})
    )
    assert booking.room_type == "Live"


def test_dead_letters_keep_oversize_values_clipped() -> None:
    kept = clipped({"booking_id": "x" * 10_000, "room_id": "r", "user_data": {"k": "v" * 5000}})
    assert kept["room_id"] == "r"
    assert len(kept["booking_id"]) < 1100 and "10000 characters, clipped" in kept["booking_id"]
    assert isinstance(kept["user_data"], str) and "clipped" in kept["user_data"]


def test_dead_letters_never_keep_a_secret() -> None:
    kept = clipped({"user_data": {"note": "tok-3x"}, "path": "a/tok-3x"}, secrets=["tok-3x"])
    assert "tok-3x" not in str(kept) and kept["user_data"] == {"note": "***"}

"""The booking.v1 message: event per state, every field, one body per stored facts."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.discovery.booking_message import (
    EVENTS,
    SCHEMA,
    build_booking_message,
    event_name,
)

FIELDS = {
    "schema", "event", "message_id", "booking_id", "room_id", "state", "reason", "start_at",
    "end_at", "started_at", "stopped_at", "user_data", "updated_at", "code", "message", "tried",
    "occurred_at",
}  # fmt: skip

FACTS = {
    "message_id": "bk:b-1:2:1700000060000",
    "at": 1700000060.0,
    "booking_id": "b-1",
    "room_id": "room-1",
    "state": "failed",
    "reason": "start failed: 1007: ip not allowed",
    "code": "1007",
    "message": "ip not allowed",
    "tried": json.dumps({"call": "start", "attempts": 1, "last_code": "1007"}),
    "start_at": "1700000000.0",
    "end_at": "1700003600.0",
    "started_at": "",
    "stopped_at": "",
    "params": json.dumps({"user_data": {"k": 1}, "name_rule": None}),
    "request": json.dumps({"task": "recordings.schedule", "kwargs": {"updated_at": "2023-11-14"}}),
}


@pytest.mark.parametrize(
    ("state", "code", "event"),
    [
        ("recording", "", "booking.recording"),
        ("stopped", "", "booking.stopped"),
        ("cancelled", "", "booking.cancelled"),
        ("failed", "1007", "booking.failed"),
        ("failed", "missed", "booking.missed"),
        ("failed", "not_started", "booking.missed"),
    ],
)
def test_each_told_state_has_its_event(state: str, code: str, event: str) -> None:
    assert event_name(state, code) == event and event in EVENTS


@pytest.mark.parametrize("state", ["scheduled", "starting", "stopping", ""])
def test_states_in_between_are_not_told(state: str) -> None:
    with pytest.raises(ValueError, match="not told"):
        event_name(state, "")


def test_a_failure_carries_code_message_and_what_was_tried() -> None:
    body = build_booking_message(FACTS)
    assert set(body) == FIELDS
    assert body["schema"] == SCHEMA and body["event"] == "booking.failed"
    assert body["start_at"] == "2023-11-14T22:13:20Z" and body["end_at"] == "2023-11-14T23:13:20Z"
    assert body["occurred_at"] == "2023-11-14T22:14:20.000Z"
    assert body["started_at"] is None and body["stopped_at"] is None
    assert body["user_data"] == {"k": 1} and body["updated_at"] == "2023-11-14"
    assert body["tried"] == {
        "call": "start",
        "attempts": 1,
        "last_code": "1007",
        "last_message": None,
    }
    assert (body["code"], body["message"]) == ("1007", "ip not allowed")


def test_a_recording_has_no_failure_fields() -> None:
    facts = {**FACTS, "state": "recording", "started_at": "1700000001.5", "code": ""}
    body = build_booking_message(facts)
    assert body["event"] == "booking.recording" and body["started_at"] == "2023-11-14T22:13:21.500Z"
    assert body["code"] is None and body["message"] is None and body["tried"] is None


@given(st.sampled_from(["recording", "stopped", "cancelled", "failed"]), st.text(max_size=20))
def test_the_body_is_json_and_a_function_of_the_facts(state: str, reason: str) -> None:
    facts = {**FACTS, "state": state, "reason": reason}
    first = build_booking_message(facts)
    assert json.loads(json.dumps(first)) == first == build_booking_message(dict(facts))
    assert first["event"] == event_name(state, str(facts["code"]))

"""The compact booking layout (schedules/layout.py): what is kept verbatim, and the request's
keyword arguments as the Lua side rebuilds them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from anyrtc_recorder_client.contract import SCHEDULE, START
from schedules.layout import REQUEST_KWARGS, num_text, params_text, raw_kwargs
from schedules.migrate import compact_fields

LIB = Path(__file__).resolve().parents[2] / "worker" / "lua" / "lib.lua"

PARAMS = {"user_data": {"n": 7}, "name_rule": None, "path": None, "room_type": None}


def _lua_kwargs() -> dict[str, tuple[str, ...]]:
    block = re.search(r"local REQUEST_KWARGS = \{(.*?)\n\}", LIB.read_text(), re.S)
    assert block is not None
    found = {}
    for kind, names in re.findall(r"(\w+) = \{([^}]*)\}", block.group(1)):
        found[kind] = tuple(re.findall(r"'(\w+)'", names))
    return found


def test_the_request_kwargs_are_the_contracts_in_python_and_in_lua() -> None:
    expected = {"schedule": SCHEDULE.parameters, "start": START.parameters}
    assert expected == REQUEST_KWARGS
    assert _lua_kwargs() == expected


def _schedule_raw(**changes: object) -> dict[str, str]:
    kwargs: dict[str, object] = {
        "booking_id": "b1",
        "room_id": "r1",
        "start_at": 1_796_745_600.0,
        "end_at": 1_796_749_200,
        "user_data": {"n": 7},
        "name_rule": None,
        "path": None,
        "room_type": None,
        "updated_at": 1_796_634_000.5,
    }
    kwargs.update(changes)
    return raw_kwargs(
        "schedule",
        kwargs,
        booking_id="b1",
        room_id="r1",
        start_at=1_796_745_600.0,
        end_at=1_796_749_200.0,
        updated_at=1_796_634_000.5,
        params=PARAMS,
    )


def test_values_the_stored_fields_give_back_are_not_kept_again() -> None:
    assert _schedule_raw() == {}


def test_values_received_in_another_form_are_kept_verbatim() -> None:
    raw = _schedule_raw(
        start_at="2026-12-07T10:00:00+08:00",
        updated_at=1_796_634_000.123456,  # more digits than Lua's cjson writes
        user_data={"tags": []},  # cjson would turn the empty list into an object
    )
    assert raw == {
        "start_at": '"2026-12-07T10:00:00+08:00"',
        "updated_at": "1796634000.123456",
        "user_data": '{"tags":[]}',
    }


def test_a_start_without_booking_id_keeps_it_null() -> None:
    kwargs = {"room_id": "r1", "booking_id": None, **PARAMS}
    raw = raw_kwargs(
        "start", kwargs, booking_id="manual:r1", room_id="r1", start_at=1.0, end_at=2.0,
        updated_at=None, params=PARAMS,
    )  # fmt: skip
    assert raw == {"booking_id": "null"}


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_a_stored_time_reads_back_as_the_same_number(value: float) -> None:
    assert float(num_text(value)) == value
    assert not num_text(float(int(value))).endswith(".0")


def test_params_leave_out_what_is_not_set() -> None:
    assert params_text(PARAMS) == '{"user_data":{"n":7}}'
    assert params_text(dict.fromkeys(PARAMS)) == ""
    both = {"path": "a/b", "user_data": "x"}
    assert json.loads(params_text(both)) == both


def test_an_old_recording_booking_keeps_every_field_under_its_short_name() -> None:
    old = {
        "booking_id": "b1", "room_id": "r1", "start_at": "1796745600.0",
        "end_at": "1796749200.0", "start_due": "1796745600.0", "stop_due": "1796749200.0",
        "params": '{"name_rule":null,"path":null,"room_type":null,"user_data":"x"}',
        "request": json.dumps({"task": "recordings.schedule", "kwargs": {
            "booking_id": "b1", "room_id": "r1", "start_at": 1796745600.0,
            "end_at": 1796749200.0, "user_data": "x", "name_rule": None, "path": None,
            "room_type": None, "updated_at": None}}),
        "changed_at": "1796745600", "reason": "vendor: ok", "code": "", "message": "",
        "created_at": "1796634000", "updated_at": "", "seq": "2", "next": "stop:b1:2",
        "next_at": "1796749200", "state": "recording", "ending": "", "final": "",
        "recorded": "1", "rec_started_at": "1796745600", "rec_stopped_at": "", "tried": "",
        "held_room": "r1", "told": "1",
    }  # fmt: skip
    assert compact_fields("b1", old) == {
        "rm": "r1", "sa": "1796745600", "ea": "1796749200", "sd": "1796745600",
        "ed": "1796749200", "pa": '{"user_data":"x"}', "ch": "1796745600", "rs": "vendor: ok",
        "ca": "1796634000", "sq": "2", "nx": "stop", "na": "1796749200", "st": "recording",
        "rc": "1", "ra": "1796745600", "hr": "r1", "tl": "1",
    }  # fmt: skip

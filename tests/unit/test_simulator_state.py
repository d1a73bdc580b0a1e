"""The simulator's vendor logic under a fake clock: no HTTP, no sleeping."""

from __future__ import annotations

import json
from typing import Any

import pytest

from worker.anyrtc import results
from worker.anyrtc.signing import sign
from worker.simulator import (
    SimulatorState,
    SlidingWindowBudget,
    apply_updates,
    build_config,
    public_config,
)

APP = "unit-app"
TOKEN = "unit-secret-token-123"
T0 = 1_700_000_000.0
LIST = "getVodListByTime"
ROOM = "getVodInfoByRoomId"


class FakeClock:
    """Epoch seconds that move only when told to."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_state(clock: FakeClock, **overrides: Any) -> SimulatorState:
    config = apply_updates(build_config(**overrides), {})
    config.apps = {APP: TOKEN}
    return SimulatorState(config, clock=clock, base_url="http://sim.test:1")


@pytest.fixture
def state(clock: FakeClock) -> SimulatorState:
    return make_state(clock, upload_delay_s=1.0, transcode_delay_s=4.0, seed=7)


def query_body(clock: FakeClock, endpoint: str = LIST, **changes: Any) -> dict[str, Any]:
    timestamp = changes.pop("timestamp", int(clock() * 1000))
    body: dict[str, Any] = {
        "appId": changes.pop("appId", APP),
        "random": "r4nd0m",
        "timestamp": timestamp,
        "begTime": 0,
        "endTime": 9_999_999_999_999,
    }
    if endpoint == LIST:
        body.update(pageNum=1, pageMax=100)
    else:
        body["roomId"] = "room-1"
    token = changes.pop("token", TOKEN)
    body["signature"] = sign(body["appId"], str(timestamp), token, body["random"])
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def query(state: SimulatorState, body: Any, endpoint: str = LIST, ctype: str = "application/json"):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return state.query_call(endpoint, raw, ctype, "127.0.0.1").payload


def code_of(state: SimulatorState, body: Any, endpoint: str = LIST) -> int:
    return query(state, body, endpoint)["code"]


def record(state: SimulatorState, endpoint: str, room: str = "room-1", body: Any = None) -> str:
    params = {"AppID": [APP], "ArRoomID": [room], "Type": ["Meet"]}
    raw = b"" if body is None else json.dumps(body).encode()
    return state.record_call(endpoint, params, raw, "127.0.0.1").payload["result"]


def meeting(state: SimulatorState, clock: FakeClock, room: str = "room-1", length: float = 30):
    assert record(state, "startrecord", room) == results.OK
    clock.advance(length)
    assert record(state, "stoprecord", room) == results.OK


# -- budget ------------------------------------------------------------------------------


def test_sliding_window_frees_exactly_when_the_oldest_call_leaves() -> None:
    budget = SlidingWindowBudget()
    for t in (0.1, 1.0, 2.0, 3.0, 4.0):
        assert budget.try_admit("app", T0 + t, 5, 60.0)
    assert not budget.try_admit("app", T0 + 5.0, 5, 60.0)
    assert budget.retry_after("app", T0 + 5.0, 5, 60.0) == pytest.approx(55.1)
    assert not budget.try_admit("app", T0 + 60.09, 5, 60.0)
    assert budget.try_admit("app", T0 + 0.1 + 60.0, 5, 60.0)
    assert not budget.try_admit("app", T0 + 60.5, 5, 60.0)
    assert budget.try_admit("other-app", T0 + 60.5, 5, 60.0)


def test_query_budget_299_on_the_sixth_call_and_frees_after_the_window(
    state: SimulatorState, clock: FakeClock
) -> None:
    first = clock()
    for _ in range(5):
        assert code_of(state, query_body(clock)) == 200
        clock.advance(1.0)
    assert code_of(state, query_body(clock)) == 299
    clock.now = first + 60.0 - 0.001
    assert code_of(state, query_body(clock)) == 299
    clock.now = first + 60.0
    assert code_of(state, query_body(clock)) == 200
    assert code_of(state, query_body(clock)) == 299


def test_rejected_calls_and_299s_do_not_use_budget(state: SimulatorState, clock: FakeClock) -> None:
    for _ in range(10):
        assert code_of(state, query_body(clock, token="wrong")) == 281
        assert code_of(state, query_body(clock, pageMax=101)) == 400
    for _ in range(5):
        assert code_of(state, query_body(clock, ROOM), ROOM) == 200
    for _ in range(3):
        assert code_of(state, query_body(clock)) == 299
    clock.advance(60.0)
    assert code_of(state, query_body(clock)) == 200


def test_injected_501_uses_budget(clock: FakeClock) -> None:
    state = make_state(clock, error_rate=1.0, rate_limit=2)
    assert [code_of(state, query_body(clock)) for _ in range(3)] == [501, 501, 299]


# -- check order -------------------------------------------------------------------------


def test_codes_come_in_the_vendor_order(clock: FakeClock) -> None:
    state = make_state(clock, rate_limit=1, deleted_apps=["gone-app"])
    state.configure({"apps": {"gone-app": "gone-token"}})
    stale = int((clock() - 301) * 1000)
    # Each request carries every fault of the next line too; only the first one is reported.
    assert code_of(state, query_body(clock, appId="nope", timestamp=5, pageNum=0)) == 400
    assert code_of(state, query_body(clock, appId="nope", timestamp=5, token="x")) == 247
    assert code_of(state, query_body(clock, appId="gone-app", timestamp=5)) == 284
    assert code_of(state, query_body(clock, timestamp=stale, token="x")) == 282
    assert code_of(state, query_body(clock, timestamp=1_700_000_000, token="x")) == 282
    assert code_of(state, query_body(clock, token="x")) == 281
    assert code_of(state, query_body(clock)) == 200  # the first admitted call
    state.configure({"inject_next": [{"endpoint": "*", "code": 501}]})
    assert code_of(state, query_body(clock)) == 299  # budget spent: the injection waits
    clock.advance(61)
    assert code_of(state, query_body(clock)) == 501
    clock.advance(61)
    assert code_of(state, query_body(clock)) == 200


def test_query_parameter_typing(state: SimulatorState, clock: FakeClock) -> None:
    digits = str(int(clock() * 1000))
    assert code_of(state, query_body(clock, timestamp=digits)) == 200
    assert code_of(state, query_body(clock, begTime="0", endTime="9999999999999")) == 200
    for bad in (
        {"timestamp": True},
        {"timestamp": float(int(clock() * 1000))},
        {"begTime": "12a"},
        {"begTime": 10, "endTime": 5},
        {"pageNum": "1"},
        {"pageNum": 0},
        {"pageMax": 101},
        {"pageMax": 0},
        {"random": "12345"},
        {"random": "12345678901"},
        {"appId": ...},
        {"signature": 123},
    ):
        payload = query(state, query_body(clock, **bad))
        assert payload["code"] == 400, bad
        assert "content" not in payload
    assert code_of(state, query_body(clock, ROOM, roomId=""), ROOM) == 400
    assert code_of(state, b"[1, 2]") == 400
    assert code_of(state, b"not json") == 400
    wrong_type = state.query_call(LIST, json.dumps(query_body(clock)).encode(), "text/plain", "x")
    assert wrong_type.payload["code"] == 400


def test_signature_uses_the_timestamp_exactly_as_sent(
    state: SimulatorState, clock: FakeClock
) -> None:
    padded = "0" + str(int(clock() * 1000))
    body = query_body(clock, timestamp=padded)
    assert code_of(state, body) == 200
    body["signature"] = sign(APP, str(int(padded)), TOKEN, body["random"])
    assert code_of(state, body) == 281


# -- files -------------------------------------------------------------------------------


def test_status_goes_0_1_2_from_the_clock(state: SimulatorState, clock: FakeClock) -> None:
    # Whole seconds keep every boundary exact in binary floating point.
    meeting(state, clock, length=42.0)
    stop = clock()
    [file] = state.files()
    assert file["status"] is None
    assert (file["start_time"], file["end_time"], file["file_duration"]) == (T0, stop, 42)
    for offset, status in ((0.99, None), (1.0, 0), (2.99, 0), (3.0, 1), (4.99, 1), (5.0, 2)):
        clock.now = stop + offset
        assert state.files()[0]["status"] == status, offset


def test_fail_rate_one_ends_in_status_3_without_callback(clock: FakeClock) -> None:
    state = make_state(clock, transcode_fail_rate=1.0, callback_url="http://receiver.test/cb")
    meeting(state, clock)
    clock.advance(1.0 + 5.0)
    assert [f["status"] for f in state.files()] == [3]
    assert state.due_callbacks() == []


def test_stop_creates_mixed_and_per_user_files_named_by_the_rule(clock: FakeClock) -> None:
    state = make_state(clock, per_user_files=2, seed=1)
    body = {"UserData": '{"k": 1}', "NameRule": "ar_{roomid}_{userid}_{date}", "Path": "a/b"}
    assert record(state, "startrecord", "r9", body) == results.OK
    clock.advance(10)
    assert record(state, "stoprecord", "r9") == results.OK
    files = state.files()
    assert [(f["type"], f["user_id"]) for f in files] == [("1", ""), ("2", "u1"), ("2", "u2")]
    assert [f["file_name"] for f in files] == [
        "ar_r9__20231114.mp4",
        "ar_r9_u1_20231114.mp4",
        "ar_r9_u2_20231114.mp4",
    ]
    for f in files:
        assert len(f["fileid"]) == 20 and f["fileid"].isalnum()
        assert f["download_url"] == f"http://sim.test:1/vod/{f['fileid']}.mp4"
        assert f["user_data"] == '{"k": 1}' and f["media_type"] == "audio/video"


def test_listing_filters_by_upload_time_and_paginates(
    state: SimulatorState, clock: FakeClock
) -> None:
    uploads = []
    for i in range(7):
        meeting(state, clock, room=f"room-{i}", length=10)
        uploads.append(round((clock() + 1.0) * 1000))
    clock.advance(100)
    body = query_body(clock, begTime=uploads[1], endTime=uploads[5], pageMax=3)
    pages = [query(state, {**body, "pageNum": n})["content"] for n in (1, 2, 3)]
    assert [p["cnt"]["cnt"] for p in pages] == [5, 5, 5]
    assert [len(p["data"]) for p in pages] == [3, 2, 0]
    listed = [item["upload_timestamp"] for p in pages for item in p["data"]]
    assert listed == uploads[1:6]
    assert list(pages[0]["data"][0]) == [
        "filesize",
        "filestatus",
        "filetype",
        "upload_time",
        "upload_timestamp",
        "download_url",
        "start_time",
        "end_time",
        "file_duration",
    ]


def test_room_query_lists_all_files_of_the_room_with_fileid(
    state: SimulatorState, clock: FakeClock
) -> None:
    meeting(state, clock, room="room-1")
    meeting(state, clock, room="room-2")
    meeting(state, clock, room="room-1")
    clock.advance(2)
    content = query(state, query_body(clock, ROOM), ROOM)["content"]
    assert content["cnt"]["cnt"] == 2
    assert {item["room_id"] for item in content["data"]} == {"room-1"}
    assert list(content["data"][0])[:7] == [
        "fileid",
        "filesize",
        "filestatus",
        "filetype",
        "upload_time",
        "upload_timestamp",
        "room_id",
    ]


def test_listing_lag_hides_a_file_then_shows_it_with_a_past_upload_time(
    clock: FakeClock,
) -> None:
    state = make_state(clock, upload_delay_s=1.0, listing_lag_s=30.0)
    meeting(state, clock)
    stop = clock()
    upload_ms = round((stop + 1.0) * 1000)
    clock.now = stop + 30.999
    assert query(state, query_body(clock))["content"]["cnt"]["cnt"] == 0
    clock.now = stop + 31.0
    [item] = query(state, query_body(clock))["content"]["data"]
    assert item["upload_timestamp"] == upload_ms < clock() * 1000 - 29_000


def test_response_variants(clock: FakeClock) -> None:
    state = make_state(clock, response_variant="table", rate_limit=100)
    meeting(state, clock)
    clock.advance(10)
    table = query(state, query_body(clock))
    assert {"msg", "conent"} <= set(table) and "content" not in table and "message" not in table
    state.configure({"response_variant": "seconds"})
    item = query(state, query_body(clock))["content"]["data"][0]
    assert item["upload_timestamp"] == str(int(T0 + 30 + 1))
    assert item["start_time"] == str(int(T0)) and item["end_time"] == str(int(T0 + 30))
    assert item["upload_time"] == "2023-11-14T22:13:51.000Z"


# -- start/stop --------------------------------------------------------------------------


def test_start_stop_results(state: SimulatorState) -> None:
    assert record(state, "stoprecord") == results.NOT_RECORDING
    assert record(state, "startrecord") == results.OK
    assert record(state, "startrecord") == results.ALREADY_RECORDING
    assert record(state, "startrecord", body={"UserData": {"a": 1}}).startswith(
        results.BAD_PARAMETER
    )
    assert record(state, "startrecord", "r2", {"NameRule": "nounderscore"}).startswith(
        results.BAD_PARAMETER + ": NameRule"
    )
    assert record(state, "startrecord", "r2", {"Path": "/abs"}).startswith(results.BAD_PARAMETER)
    assert record(state, "startrecord", "r2", {"Path": "a/../b"}).startswith(results.BAD_PARAMETER)
    lower = state.record_call(
        "startrecord", {"AppId": [APP], "ArRoomID": ["r"], "Type": ["Meet"]}, b"", "127.0.0.1"
    )
    assert lower.payload["result"].startswith(results.BAD_PARAMETER)
    outsider = state.record_call(
        "startrecord", {"AppID": [APP], "ArRoomID": ["r3"], "Type": ["Meet"]}, b"", "10.1.2.3"
    )
    assert outsider.payload["result"] == results.IP_NOT_ALLOWED
    assert record(state, "stoprecord") == results.OK
    assert [r["room_id"] for r in state.rooms()] == []


# -- journal and secrets -----------------------------------------------------------------


def test_token_never_reaches_journal_or_config_view(
    state: SimulatorState, clock: FakeClock
) -> None:
    query(state, query_body(clock, vodToken=TOKEN, note=f"x{TOKEN}y"))
    record(state, "startrecord", body={"UserData": TOKEN})
    state.configure({"apps": {APP: "rotated-token-456"}})
    query(state, query_body(clock, token=TOKEN, leak=TOKEN))
    dumped = json.dumps([state.journal.entries(), state.public_config(), state.rooms()])
    assert TOKEN not in dumped and "rotated-token-456" not in dumped
    assert state.public_config()["apps"] == {APP: "***"}
    assert len(state.journal.entries()) == 3


def test_reset_clears_state_restores_start_config_and_keeps_seq_increasing(
    state: SimulatorState, clock: FakeClock
) -> None:
    meeting(state, clock)
    record(state, "startrecord", "open-room")
    state.configure({"rate_limit": 3})
    assert [code_of(state, query_body(clock)) for _ in range(4)] == [200, 200, 200, 299]
    state.configure({"inject_next": [{"fault": "drop"}], "error_rate": 1.0})
    last = state.journal.last_seq
    state.reset({"per_user_files": 1})
    assert state.files() == [] and state.rooms() == [] and state.journal.entries() == []
    assert state.config.faults.inject_next == [] and state.config.faults.error_rate == 0.0
    assert state.config.per_user_files == 1
    assert state.config.rate_limit == 5  # runtime changes undone: back to the start config
    assert record(state, "stoprecord", "open-room") == results.NOT_RECORDING
    assert state.journal.entries()[0]["seq"] == last + 1
    assert code_of(state, query_body(clock)) == 200  # the budget was cleared too


def test_config_updates_are_validated() -> None:
    config = build_config()
    for bad in (
        {"rate_limit": "5"},
        {"error_rate": 1.5},
        {"response_variant": "xml"},
        {"allowed_ips": ["not-an-ip"]},
        {"callback_url": "ftp://x"},
        {"inject_next": [{"endpoint": "startrecord", "code": 282}]},
        {"inject_next": [{"endpoint": "nowhere", "fault": "drop"}]},
        {"no_such_field": 1},
    ):
        with pytest.raises(ValueError):
            apply_updates(config, bad)
    view = public_config(apply_updates(config, {"apps": {"b": "tok"}, "drop_rate": 0.5}))
    assert view["apps"] == {"demo-app": "***", "b": "***"}
    assert view["faults"]["drop_rate"] == 0.5


def test_same_seed_same_faults_and_file_ids(clock: FakeClock) -> None:
    def run() -> tuple[list[int], list[str]]:
        state = make_state(clock, seed=42, error_rate=0.5, rate_limit=1000, fault_endpoints=[LIST])
        codes = [code_of(state, query_body(clock)) for _ in range(20)]
        meeting(state, clock)
        return codes, [f["fileid"] for f in state.files()]

    first, second = run(), run()
    assert first == second
    assert set(first[0]) == {200, 501}


# -- callbacks ---------------------------------------------------------------------------


def test_callback_is_due_once_when_the_file_reaches_status_2(clock: FakeClock) -> None:
    state = make_state(
        clock, upload_delay_s=1.0, transcode_delay_s=4.0, callback_url="http://receiver.test/cb"
    )
    assert record(state, "startrecord", body={"UserData": "ud"}) == results.OK
    clock.advance(20.0)
    assert record(state, "stoprecord") == results.OK
    stop = clock()
    clock.now = stop + 4.999
    assert state.due_callbacks() == []
    clock.now = stop + 5.0
    [job] = state.due_callbacks()
    assert job.url == "http://receiver.test/cb" and job.copies == 1
    assert job.body["startTime"] == str(int(T0)) and job.body["endTime"] == str(int(stop))
    assert (job.body["duration"], job.body["userData"], job.body["groupId"]) == (20, "ud", "room-1")
    assert state.due_callbacks() == []
    assert state.files()[0]["callback"] == "sent"


def test_callback_drop_rate_one_journals_the_drop(clock: FakeClock) -> None:
    state = make_state(clock, callback_url="http://receiver.test/cb", callback_drop_rate=1.0)
    meeting(state, clock)
    clock.advance(10.0)
    assert state.due_callbacks() == []
    assert [e["verdict"] for e in state.journal.entries(endpoint="callback")] == ["fault: drop"]


# -- rooms that misbehave ----------------------------------------------------------------


def test_a_no_file_room_confirms_start_and_stop_and_never_lists_a_file(clock: FakeClock) -> None:
    state = make_state(clock, no_file_rooms=["room-1"], transcode_delay_s=1.0)
    meeting(state, clock, room="room-1")
    meeting(state, clock, room="room-2")
    clock.advance(10.0)
    assert {f["room_id"] for f in state.files()} == {"room-2"}
    by_room = query(state, query_body(clock, ROOM), endpoint=ROOM)
    assert by_room["code"] == 200 and by_room["content"]["data"] == []
    assert state.rooms() == []


def test_a_silent_room_lists_its_files_and_journals_each_withheld_callback(
    clock: FakeClock,
) -> None:
    state = make_state(
        clock, callback_url="http://receiver.test/cb", silent_rooms=["room-1"], per_user_files=1
    )
    meeting(state, clock, room="room-1")
    meeting(state, clock, room="room-2")
    clock.advance(20.0)
    jobs = state.due_callbacks()
    assert {job.body["groupId"] for job in jobs} == {"room-2"}
    verdicts = [e["verdict"] for e in state.journal.entries(endpoint="callback")]
    assert verdicts == ["fault: silent room", "fault: silent room"]
    listed = query(state, query_body(clock))["content"]["data"]
    assert len(listed) == 4


def test_room_switches_are_checked_and_cleared_by_reset(clock: FakeClock) -> None:
    state = make_state(clock)
    with pytest.raises(ValueError, match="silent_rooms"):
        state.configure({"silent_rooms": "room-1"})
    state.configure({"no_file_rooms": ["room-1"], "silent_rooms": ["room-2"]})
    assert state.public_config()["no_file_rooms"] == ["room-1"]
    state.reset()
    assert state.public_config()["no_file_rooms"] == []
    assert state.public_config()["silent_rooms"] == []


def test_cli_room_switches_reach_the_config() -> None:
    from worker.simulator.__main__ import _config_from, build_parser

    args = build_parser().parse_args(["--no-file-rooms", "a, b", "--silent-rooms", "c"])
    overrides = _config_from(args)["overrides"]
    assert overrides["no_file_rooms"] == ["a", "b"] and overrides["silent_rooms"] == ["c"]

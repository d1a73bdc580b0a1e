"""AnyRTCClient against the simulator over real loopback HTTP."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from tests.support.waiting import wait_until
from worker.anyrtc import AnyRTCClient
from worker.anyrtc.results import ALREADY_RECORDING, IP_NOT_ALLOWED, NOT_RECORDING
from worker.errors import (
    BadSignature,
    BadTimestamp,
    BudgetExhausted,
    RateLimited,
    RecordCallFailed,
    UnknownApp,
    VendorHTTPError,
    VendorInternalError,
    VendorTimeout,
    VendorUnreachable,
)

pytestmark = pytest.mark.integration


class CountingGate:
    def __init__(self, refuse_after: int | None = None) -> None:
        self.admitted: list[str] = []
        self.rate_limited: list[str] = []
        self.ended: list[str] = []
        self.answers: list[tuple[str, str, str]] = []
        self.refuse_after = refuse_after

    def before_query(self, app_id: str, endpoint: str) -> None:
        if self.refuse_after is not None and len(self.admitted) >= self.refuse_after:
            raise BudgetExhausted(1.5, app_id)
        self.admitted.append(endpoint)

    def after_query(self, app_id: str, endpoint: str) -> None:
        self.ended.append(endpoint)

    def on_rate_limited(self, app_id: str, endpoint: str) -> None:
        self.rate_limited.append(endpoint)

    def on_answer(self, endpoint: str, outcome: str, code: str) -> None:
        self.answers.append((endpoint, outcome, code))


def make_client(sim: Any, **overrides: Any) -> AnyRTCClient:
    options: dict[str, Any] = {
        "record_api_url": sim.record_api_url,
        "vod_api_url": sim.vod_api_url,
        "timeout_s": 3.0,
    }
    options.update(overrides)
    app_id = options.pop("app_id", sim.app_id)
    token = options.pop("vod_token", sim.vod_token)
    return AnyRTCClient(app_id, token, **options)


def record_meetings(sim: Any, count: int, room_prefix: str = "room") -> None:
    now = time.time()
    for i in range(count):
        response = requests.post(
            f"{sim.base_url}/_admin/record",
            json={"room_id": f"{room_prefix}-{i}", "start": now - 120 - i, "end": now - 60 - i},
            timeout=5,
        )
        response.raise_for_status()


def test_start_then_stop_sends_what_the_vendor_documents(sim: Any) -> None:
    client = make_client(sim)
    user_data = {"booking_id": "b-1", "title": "会议"}
    assert client.start_record(
        "R1", user_data=user_data, name_rule="ar_{roomid}_{date}_{random}"
    ).ok
    assert client.stop_record("R1").ok
    start, stop = sim.journal("startrecord")[0], sim.journal("stoprecord")[0]
    assert start["params"]["AppID"] == sim.app_id
    assert start["params"]["ArRoomID"] == "R1"
    assert start["params"]["Type"] == "Meet"
    assert json.loads(start["params"]["UserData"]) == user_data
    assert start["params"]["NameRule"] == "ar_{roomid}_{date}_{random}"
    assert stop["verdict"] == "ok"


def test_double_start_and_idle_stop_are_permanent_failures(sim: Any) -> None:
    client = make_client(sim)
    client.start_record("R2")
    with pytest.raises(RecordCallFailed) as info:
        client.start_record("R2")
    assert info.value.code == ALREADY_RECORDING and info.value.retryable is False
    with pytest.raises(RecordCallFailed) as info:
        client.stop_record("idle-room")
    assert info.value.code == NOT_RECORDING


def test_start_from_outside_the_allowlist_fails(sim: Any) -> None:
    sim.configure(allowed_ips=["10.9.9.9"])
    with pytest.raises(RecordCallFailed) as info:
        make_client(sim).start_record("R3")
    assert info.value.code == IP_NOT_ALLOWED


def test_invalid_arguments_fail_before_any_call(sim: Any) -> None:
    client = make_client(sim)
    with pytest.raises(ValueError, match="unknown placeholder"):
        client.start_record("R4", name_rule="ar_{foo}_{date}")
    with pytest.raises(TypeError):
        client.start_record("R4", user_data=["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        client.list_by_time(2000, 1000)
    with pytest.raises(ValueError):
        client.list_by_time(0, 1000, page_max=101)
    assert sim.journal() == []


def test_stop_creates_files_listed_by_time_and_by_room(sim: Any) -> None:
    sim.configure(upload_delay_s=0.0, transcode_delay_s=0.2, per_user_files=2, rate_limit=100)
    client = make_client(sim)
    begin = int(time.time() * 1000) - 1000
    client.start_record("R5", user_data="plain")
    client.stop_record("R5")
    page = wait_until(
        lambda: (p := client.list_by_time(begin, int(time.time() * 1000) + 1000)).total == 3 and p
    )
    assert {f.file_status for f in page.files} <= {0, 1, 2}
    assert all(f.room_id is None and f.file_id is None for f in page.files)
    by_room = client.list_by_room("R5", begin, int(time.time() * 1000) + 1000)
    assert by_room.total == 3
    assert all(f.room_id == "R5" and f.file_id for f in by_room.files)
    assert {f.identity for f in by_room.files} == {f.identity for f in page.files}

    def all_done() -> Any:
        result = client.list_by_room("R5", begin, begin + 10**6)
        return all(f.file_status == 2 for f in result.files) and result

    final = wait_until(all_done)
    assert all(f.is_final for f in final.files)


def test_list_by_time_paginates_with_cnt(sim: Any) -> None:
    sim.configure(rate_limit=100, upload_delay_s=0.0)
    record_meetings(sim, 7)
    client = make_client(sim)
    now_ms = int(time.time() * 1000)
    seen: list[str] = []
    page_num = 1
    while True:
        page = client.list_by_time(
            now_ms - 3_600_000, now_ms + 60_000, page_num=page_num, page_max=3
        )
        assert page.total == 7
        seen.extend(f.identity for f in page.files)
        if not page.has_more:
            break
        page_num += 1
    assert page_num == 3
    assert len(seen) == 7 == len(set(seen))


def test_299_once_the_budget_is_spent_and_gate_is_told(sim: Any) -> None:
    sim.configure(rate_limit=2, rate_period_s=60)
    gate = CountingGate()
    client = make_client(sim, query_gate=gate)
    now_ms = int(time.time() * 1000)
    client.list_by_time(now_ms - 1000, now_ms)
    client.list_by_room("R", now_ms - 1000, now_ms)
    with pytest.raises(RateLimited) as info:
        client.list_by_time(now_ms - 1000, now_ms)
    assert info.value.code == 299 and info.value.retryable
    assert gate.rate_limited == ["getVodListByTime"]
    assert len(gate.admitted) == 3
    # One answer per query (the metrics' vendor calls), with its outcome and code.
    assert gate.answers == [
        ("getVodListByTime", "ok", "200"),
        ("getVodInfoByRoomId", "ok", "200"),
        ("getVodListByTime", "retry", "299"),
    ]


def test_gate_refusal_sends_nothing(sim: Any) -> None:
    client = make_client(sim, query_gate=CountingGate(refuse_after=0))
    with pytest.raises(BudgetExhausted) as info:
        client.list_by_time(0, 1000)
    assert info.value.retry_after == 1.5
    assert sim.journal() == []


def test_wrong_token_gives_281_without_leaking_it(sim: Any) -> None:
    client = make_client(sim, vod_token="not-the-token-xyz")
    with pytest.raises(BadSignature) as info:
        client.list_by_time(0, 1000)
    assert info.value.code == 281 and not info.value.retryable
    assert "not-the-token-xyz" not in str(info.value) and sim.vod_token not in str(info.value)
    assert "not-the-token-xyz" not in repr(client)
    assert sim.vod_token not in json.dumps(sim.journal())


def test_unknown_app_gives_247(sim: Any) -> None:
    with pytest.raises(UnknownApp):
        make_client(sim, app_id="nobody").list_by_time(0, 1000)


def test_282_is_retried_once_with_a_fresh_timestamp(sim: Any) -> None:
    sim.configure(inject_next=[{"endpoint": "getVodListByTime", "code": 282}])
    gate = CountingGate()
    page = make_client(sim, query_gate=gate).list_by_time(0, 1000)
    assert page.total == 0
    first, second = sim.journal("getVodListByTime")
    assert first["code"] == 282 and second["code"] == 200
    assert first["params"]["random"] != second["params"]["random"]
    assert len(gate.admitted) == 2  # the retry passed through the gate too
    assert len(gate.ended) == 2


def test_282_twice_is_permanent(sim: Any) -> None:
    stale = make_client(sim, clock=lambda: time.time() - 600)
    with pytest.raises(BadTimestamp) as info:
        stale.list_by_time(0, 1000)
    assert not info.value.retryable
    assert [e["code"] for e in sim.journal("getVodListByTime")] == [282, 282]


def test_vendor_501_and_http_5xx_are_retryable(sim: Any) -> None:
    client = make_client(sim)
    sim.configure(inject_next=[{"endpoint": "getVodListByTime", "code": 501}])
    with pytest.raises(VendorInternalError) as info:
        client.list_by_time(0, 1000)
    assert info.value.retryable
    sim.configure(inject_next=[{"endpoint": "startrecord", "http_status": 503}])
    with pytest.raises(VendorHTTPError) as http_info:
        client.start_record("R6")
    assert http_info.value.code == 503 and http_info.value.retryable


def test_gate_hears_the_end_of_every_admitted_attempt(sim: Any) -> None:
    gate = CountingGate()
    client = make_client(sim, timeout_s=0.5, query_gate=gate)
    sim.configure(inject_next=[{"endpoint": "*", "fault": "drop"}])
    with pytest.raises(VendorUnreachable):
        client.list_by_time(0, 1000)
    sim.configure(inject_next=[{"endpoint": "*", "code": 501}])
    with pytest.raises(VendorInternalError):
        client.list_by_room("R", 0, 1000)
    client.list_by_time(0, 1000)
    assert (
        gate.ended
        == gate.admitted
        == ["getVodListByTime", "getVodInfoByRoomId", "getVodListByTime"]
    )


def test_dropped_connection_and_timeout_are_retryable(sim: Any) -> None:
    client = make_client(sim, timeout_s=0.5)
    sim.configure(inject_next=[{"endpoint": "*", "fault": "drop"}])
    with pytest.raises(VendorUnreachable) as info:
        client.stop_record("R7")
    assert info.value.retryable
    sim.configure(timeout_rate=1.0, hang_s=1.5)
    with pytest.raises(VendorTimeout) as timeout_info:
        client.list_by_time(0, 1000)
    assert timeout_info.value.retryable


@pytest.mark.parametrize("variant", ["table", "seconds"])
def test_documented_response_variants_parse(sim: Any, variant: str) -> None:
    sim.configure(response_variant=variant, upload_delay_s=0.0, rate_limit=100)
    record_meetings(sim, 2, room_prefix=f"v-{variant}")
    client = make_client(sim)
    now_ms = int(time.time() * 1000)
    page = client.list_by_time(now_ms - 3_600_000, now_ms + 60_000)
    assert page.total == 2
    for file in page.files:
        assert file.upload_timestamp_ms is not None and file.upload_timestamp_ms > 10**12
        assert file.start_time is not None and file.start_time < 10**11

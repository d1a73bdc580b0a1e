"""The simulator over real loopback HTTP, driven with plain ``requests``, not the project client."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from worker.anyrtc import results
from worker.anyrtc.signing import sign
from worker.simulator import SimulatorHandle, running_simulator

pytestmark = pytest.mark.integration

LIST = "getVodListByTime"
ROOM = "getVodInfoByRoomId"
FAST = {"upload_delay_s": 0.05, "transcode_delay_s": 0.1}
LIST_FIELDS = [
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
ROOM_FIELDS = [
    "fileid",
    *LIST_FIELDS[:5],
    "room_id",
    *LIST_FIELDS[5:],
]
CALLBACK_FIELDS = [
    "type",
    "mediaType",
    "userId",
    "groupId",
    "startTime",
    "endTime",
    "fileName",
    "fileSize",
    "duration",
    "downloadUrl",
    "userData",
]


# -- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture
def http() -> Iterator[requests.Session]:
    session = requests.Session()
    session.trust_env = False  # a developer's HTTP(S)_PROXY must not capture loopback calls
    yield session
    session.close()


@pytest.fixture
def sim() -> Iterator[SimulatorHandle]:
    with running_simulator(**FAST) as handle:
        yield handle


class Receiver:
    """A tiny callback receiver: records each POST body and answers like a customer server."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], dict[str, Any]]] = []
        received = self.calls

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append((dict(self.headers), json.loads(body)))
                reply = b'{"code":0,"success":true,"message":"ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/AR/V1/av"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


def wait_for(predicate: Callable[[], Any], timeout: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def body_for(sim: SimulatorHandle, endpoint: str = LIST, **changes: Any) -> dict[str, Any]:
    timestamp = changes.pop("timestamp", int(time.time() * 1000))
    token = changes.pop("token", sim.vod_token)
    body: dict[str, Any] = {
        "appId": changes.pop("appId", sim.app_id),
        "random": "a1b2c3d4",
        "timestamp": timestamp,
        "begTime": 0,
        "endTime": 9_999_999_999_999,
    }
    if endpoint == LIST:
        body.update(pageNum=1, pageMax=100)
    else:
        body["roomId"] = "room-1"
    body["signature"] = sign(body["appId"], str(timestamp), token, body["random"])
    body.update(changes)
    return body


def vod(http: requests.Session, sim: SimulatorHandle, body: Any, endpoint: str = LIST, **kw: Any):
    return http.post(f"{sim.vod_api_url}/videoInfo/{endpoint}", json=body, timeout=5, **kw)


def code(http: requests.Session, sim: SimulatorHandle, body: Any, endpoint: str = LIST) -> int:
    response = vod(http, sim, body, endpoint)
    assert response.status_code == 200
    return response.json()["code"]


def rec(
    http: requests.Session,
    sim: SimulatorHandle,
    action: str,
    room: str = "room-1",
    body: Any = None,
    **params: str,
) -> requests.Response:
    query = {"AppID": sim.app_id, "ArRoomID": room, "Type": "Meet", **params}
    query = {k: v for k, v in query.items() if v is not None}
    return http.post(f"{sim.record_api_url}/{action}", params=query, json=body, timeout=5)


def result(
    http: requests.Session,
    sim: SimulatorHandle,
    action: str,
    room: str = "room-1",
    body: Any = None,
    **params: str,
) -> str:
    response = rec(http, sim, action, room, body, **params)
    assert response.status_code == 200
    return response.json()["result"]


def meeting(http: requests.Session, sim: SimulatorHandle, room: str = "room-1", **start: Any):
    assert result(http, sim, "startrecord", room, start or None) == results.OK
    assert result(http, sim, "stoprecord", room) == results.OK


def listed(http: requests.Session, sim: SimulatorHandle, **changes: Any) -> dict[str, Any]:
    response = vod(http, sim, body_for(sim, **changes))
    assert response.json()["code"] == 200, response.json()
    return response.json()["content"]


def wait_uploaded(sim: SimulatorHandle, count: int, status: int = 0) -> list[dict[str, Any]]:
    def ready() -> list[dict[str, Any]]:
        files = sim.files()
        ok = len(files) >= count and all((f["status"] or -1) >= status for f in files)
        return files if ok else []

    files = wait_for(ready)
    assert files, sim.files()
    return files


# -- query codes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"timestamp": True},
        {"pageMax": 101},
        {"pageNum": "1"},
        {"begTime": 1.5},
        {"random": "abc"},
        {"appId": 42},
        {"signature": None},
        {"begTime": 20, "endTime": 10},
    ],
)
def test_mistyped_parameters_answer_400(
    http: requests.Session, sim: SimulatorHandle, changes: dict[str, Any]
) -> None:
    payload = vod(http, sim, body_for(sim, **changes)).json()
    assert payload["code"] == 400 and "content" not in payload
    assert isinstance(payload["message"], str) and isinstance(payload["requestid"], int)


def test_400_for_missing_room_id_non_json_and_wrong_content_type(
    http: requests.Session, sim: SimulatorHandle
) -> None:
    room_body = body_for(sim, ROOM)
    del room_body["roomId"]
    assert code(http, sim, room_body, ROOM) == 400
    url = f"{sim.vod_api_url}/videoInfo/{LIST}"
    as_form = http.post(url, data=json.dumps(body_for(sim)), timeout=5)  # no JSON content type
    assert as_form.json()["code"] == 400
    broken = http.post(url, data="{", headers={"Content-Type": "application/json"}, timeout=5)
    assert broken.json()["code"] == 400


def test_unknown_and_deleted_apps(http: requests.Session, sim: SimulatorHandle) -> None:
    assert code(http, sim, body_for(sim, appId="nobody")) == 247
    sim.configure(deleted_apps=[sim.app_id])
    assert code(http, sim, body_for(sim)) == 284
    assert result(http, sim, "startrecord") == results.APP_INVALID
    assert result(http, sim, "startrecord", AppID="nobody") == results.APP_NOT_FOUND


def test_timestamps_in_seconds_or_stale_answer_282(
    http: requests.Session, sim: SimulatorHandle
) -> None:
    assert code(http, sim, body_for(sim, timestamp=int(time.time()))) == 282
    assert code(http, sim, body_for(sim, timestamp=int((time.time() - 301) * 1000))) == 282
    assert code(http, sim, body_for(sim, timestamp=str(int(time.time() * 1000)))) == 200


def test_wrong_token_answers_281(http: requests.Session, sim: SimulatorHandle) -> None:
    assert code(http, sim, body_for(sim, token="not-the-token")) == 281


def test_sixth_call_in_the_window_answers_299(http: requests.Session) -> None:
    with running_simulator(rate_limit=5) as sim:
        codes = [
            code(http, sim, body_for(sim, LIST if i % 2 else ROOM), LIST if i % 2 else ROOM)
            for i in range(6)
        ]
        assert codes == [200] * 5 + [299]
        verdicts = [e["verdict"] for e in sim.journal()]
        assert verdicts == ["ok"] * 5 + ["code 299"]


# -- start / stop ------------------------------------------------------------------------


def test_start_stop_and_room_state(http: requests.Session, sim: SimulatorHandle) -> None:
    assert result(http, sim, "stoprecord") == results.NOT_RECORDING
    assert result(http, sim, "startrecord", body={"UserData": '{"a":1}'}) == results.OK
    assert result(http, sim, "startrecord") == results.ALREADY_RECORDING
    assert [r["room_id"] for r in http.get(f"{sim.base_url}/_admin/rooms").json()["rooms"]] == [
        "room-1"
    ]
    assert result(http, sim, "stoprecord") == results.OK
    assert result(http, sim, "stoprecord") == results.NOT_RECORDING
    empty_body = http.post(
        f"{sim.record_api_url}/startrecord",
        params={"AppID": sim.app_id, "ArRoomID": "r2", "Type": "Meet"},
        timeout=5,
    )
    assert empty_body.json() == {"result": "ok"}


@pytest.mark.parametrize(
    ("body", "params"),
    [
        (None, {"Type": "meet"}),
        (None, {"AppID": None, "AppId": "demo-app"}),
        (None, {"ArRoomID": ""}),
        ({"UserData": {"customerCode": "1002"}}, {}),
        ({"NameRule": "{roomid}"}, {}),
        ({"NameRule": "ar_{roomid}_{nope}"}, {}),
        ({"Path": "../escape"}, {}),
        ({"Userdata": "typo"}, {}),
        ([1, 2], {}),
    ],
)
def test_bad_start_parameters(
    http: requests.Session, sim: SimulatorHandle, body: Any, params: dict[str, Any]
) -> None:
    answer = result(http, sim, "startrecord", "room-1", body, **params)
    assert answer.startswith(results.BAD_PARAMETER)
    assert sim.rooms() == []


def test_ip_allowlist_is_checked(http: requests.Session) -> None:
    with running_simulator(allowed_ips=["10.0.0.0/8"]) as sim:
        assert result(http, sim, "startrecord") == results.IP_NOT_ALLOWED
        sim.configure(allowed_ips=["127.0.0.1"])
        assert result(http, sim, "startrecord") == results.OK


# -- files and listings ------------------------------------------------------------------


def test_stop_then_list_shows_the_files_after_upload(
    http: requests.Session, sim: SimulatorHandle
) -> None:
    sim.configure(per_user_files=1, upload_delay_s=0.5, rate_limit=100)
    meeting(http, sim)
    assert listed(http, sim)["cnt"]["cnt"] == 0  # stopped, not uploaded yet
    content = wait_for(lambda: (c := listed(http, sim))["cnt"]["cnt"] == 2 and c)
    assert content, sim.files()
    for item in content["data"]:
        assert list(item) == LIST_FIELDS
        assert item["filetype"] == "mp4" and item["filestatus"] in (0, 1, 2)
        assert item["upload_time"].endswith("Z") and item["upload_timestamp"] > 10**12
        assert item["file_duration"] >= 1
        download = http.get(item["download_url"], timeout=5)
        assert download.status_code == 200 and download.content.startswith(b"\x00\x00\x00\x18ftyp")
    assert http.get(f"{sim.base_url}/vod/NoSuchFile.mp4", timeout=5).status_code == 404
    assert wait_for(lambda: [f["status"] for f in sim.files()] == [2, 2])


def test_pagination_over_seven_files(http: requests.Session, sim: SimulatorHandle) -> None:
    sim.configure(rate_limit=100)
    for i in range(7):
        meeting(http, sim, f"room-{i}")
    wait_uploaded(sim, 7)
    pages = [listed(http, sim, pageNum=n, pageMax=3) for n in (1, 2, 3, 4)]
    assert [p["cnt"]["cnt"] for p in pages] == [7] * 4
    assert [len(p["data"]) for p in pages] == [3, 3, 1, 0]
    urls = [item["download_url"] for p in pages for item in p["data"]]
    assert sorted(urls) == sorted(f["download_url"] for f in sim.files())
    stamps = [item["upload_timestamp"] for p in pages for item in p["data"]]
    assert stamps == sorted(stamps)


def test_room_query_carries_fileid_and_room_id(
    http: requests.Session, sim: SimulatorHandle
) -> None:
    meeting(http, sim, "room-1")
    meeting(http, sim, "room-2")
    wait_uploaded(sim, 2)
    response = vod(http, sim, body_for(sim, ROOM), ROOM).json()
    assert response["code"] == 200 and response["message"] == "get video info success"
    [item] = response["content"]["data"]
    assert list(item) == ROOM_FIELDS
    [file] = [f for f in sim.files() if f["room_id"] == "room-1"]
    assert (item["fileid"], item["room_id"]) == (file["fileid"], "room-1")
    assert item["download_url"].endswith(f"/vod/{file['fileid']}.mp4")


def test_table_variant_uses_msg_and_conent(http: requests.Session, sim: SimulatorHandle) -> None:
    sim.configure(response_variant="table")
    payload = vod(http, sim, body_for(sim)).json()
    assert set(payload) == {"requestid", "code", "msg", "conent"}
    assert payload["conent"] == {"data": [], "cnt": {"cnt": 0}}


# -- callbacks ---------------------------------------------------------------------------


def test_callback_carries_exactly_the_spec_fields(
    http: requests.Session, sim: SimulatorHandle, receiver: Receiver
) -> None:
    sim.configure(callback_url=receiver.url)
    user_data = '{"customerCode":"1002","uNamer":"李席"}'
    meeting(http, sim, "room-cb", UserData=user_data, NameRule="ar_{roomid}_{date}_{random}")
    assert wait_for(lambda: receiver.calls)
    headers, body = receiver.calls[0]
    assert headers["Content-Type"] == "application/json"
    assert list(body) == CALLBACK_FIELDS
    [file] = sim.files()
    assert body == {
        "type": "1",
        "mediaType": "audio/video",
        "userId": "",
        "groupId": "room-cb",
        "startTime": str(int(file["start_time"])),
        "endTime": str(int(file["end_time"])),
        "fileName": file["file_name"],
        "fileSize": file["filesize"],
        "duration": 1,
        "downloadUrl": file["download_url"],
        "userData": user_data,
    }
    assert body["fileName"].startswith("ar_room-cb_") and body["fileName"].endswith(".mp4")
    assert wait_for(lambda: [e["verdict"] for e in sim.journal("callback")] == ["callback 200"])
    time.sleep(0.15)
    assert len(receiver.calls) == 1


@pytest.mark.parametrize(
    ("rates", "expected"), [({"callback_drop_rate": 1.0}, 0), ({"callback_duplicate_rate": 1.0}, 2)]
)
def test_callback_drop_and_duplicate(
    http: requests.Session, receiver: Receiver, rates: dict[str, float], expected: int
) -> None:
    with running_simulator(callback_url=receiver.url, seed=3, **FAST, **rates) as sim:
        meeting(http, sim)
        assert wait_for(lambda: len(sim.journal("callback")) == max(expected, 1))
        time.sleep(0.15)
        assert len(receiver.calls) == expected
        if expected == 0:
            assert [e["verdict"] for e in sim.journal("callback")] == ["fault: drop"]


# -- faults ------------------------------------------------------------------------------


def test_drop_closes_the_connection_without_an_answer(http: requests.Session) -> None:
    with running_simulator(drop_rate=1.0, rate_limit=1) as sim:
        with pytest.raises(requests.ConnectionError):
            vod(http, sim, body_for(sim))
        with pytest.raises(requests.ConnectionError):
            rec(http, sim, "startrecord")
        assert sim.rooms() == []  # a dropped start never reached the room
        sim.configure(drop_rate=0.0)
        assert code(http, sim, body_for(sim)) == 299  # the dropped query used the budget
        assert [e["verdict"] for e in sim.journal()][:2] == ["fault: drop", "fault: drop"]


def test_http_503_page_and_501_code(http: requests.Session) -> None:
    with running_simulator(http_error_rate=1.0) as sim:
        page = vod(http, sim, body_for(sim))
        assert page.status_code == 503 and page.headers["Content-Type"].startswith("text/html")
        assert rec(http, sim, "stoprecord").status_code == 503
        sim.configure(http_error_rate=0.0, error_rate=1.0)
        assert code(http, sim, body_for(sim)) == 501
        plain = rec(http, sim, "startrecord")
        assert plain.status_code == 500 and plain.headers["Content-Type"].startswith("text/plain")


def test_inject_next_is_consumed_once_after_validation(
    http: requests.Session, sim: SimulatorHandle
) -> None:
    sim.configure(
        inject_next=[
            {"endpoint": "getVodListByTime", "code": 282},
            {"endpoint": "startrecord", "result": "something odd"},
            {"endpoint": "stoprecord", "http_status": 503},
        ]
    )
    assert code(http, sim, body_for(sim, token="bad")) == 281  # invalid: injection waits
    assert code(http, sim, body_for(sim, ROOM), ROOM) == 200  # other endpoint: waits
    assert code(http, sim, body_for(sim)) == 282
    assert code(http, sim, body_for(sim)) == 200
    assert result(http, sim, "startrecord") == "something odd"
    assert rec(http, sim, "stoprecord").status_code == 503
    assert result(http, sim, "startrecord") == results.OK
    assert sim.simulator.config.faults.inject_next == []


def test_hang_and_latency(http: requests.Session) -> None:
    with running_simulator(timeout_rate=1.0, hang_s=1.0, fault_endpoints=["startrecord"]) as sim:
        with pytest.raises(requests.Timeout):
            http.post(
                f"{sim.record_api_url}/startrecord",
                params={"AppID": sim.app_id, "ArRoomID": "r", "Type": "Meet"},
                timeout=0.2,
            )
        assert [r["room_id"] for r in sim.rooms()] == ["r"]  # it happened, the answer was late
        sim.configure(timeout_rate=0.0, latency_s=0.2, fault_endpoints=None)
        started = time.monotonic()
        assert code(http, sim, body_for(sim)) == 200
        assert time.monotonic() - started >= 0.2


# -- admin -------------------------------------------------------------------------------


def test_admin_journal_reset_config_and_record(
    http: requests.Session, sim: SimulatorHandle
) -> None:
    admin = f"{sim.base_url}/_admin"
    code(http, sim, body_for(sim, leak=sim.vod_token))
    meeting(http, sim)
    journal = http.get(f"{admin}/journal", timeout=5).json()
    assert [e["endpoint"] for e in journal["entries"]] == [LIST, "startrecord", "stoprecord"]
    assert journal["last_seq"] == 3
    first = journal["entries"][0]
    assert first["client_ip"] == "127.0.0.1" and first["code"] == 200
    assert first["params"]["signature"] and isinstance(first["duration_s"], float)
    since = http.get(f"{admin}/journal", params={"since": 1, "endpoint": "stoprecord"}).json()
    assert [e["seq"] for e in since["entries"]] == [3]
    config = http.get(f"{admin}/config", timeout=5).json()
    assert config["apps"] == {sim.app_id: "***"}
    everything = json.dumps(journal) + json.dumps(config)
    assert sim.vod_token not in everything

    changed = http.post(
        f"{admin}/config", json={"rate_limit": 2, "apps": {"b": "tb"}, "error_rate": 1.0}
    ).json()
    assert changed["rate_limit"] == 2 and changed["apps"] == {sim.app_id: "***", "b": "***"}
    assert http.post(f"{admin}/config", json={"rate_limit": -1}).status_code == 400
    assert http.post(f"{admin}/config", data="nope").status_code == 400

    reset = http.post(f"{admin}/reset", json={"per_user_files": 2}, timeout=5)
    assert reset.status_code == 200
    assert http.get(f"{admin}/journal", timeout=5).json()["entries"] == []
    assert http.get(f"{admin}/files", timeout=5).json()["files"] == []

    now = time.time()
    made = http.post(
        f"{admin}/record",
        json={"room_id": "auto-1", "start": now - 120, "end": now - 60, "user_data": "u"},
        timeout=5,
    )
    assert made.status_code == 200
    files = http.get(f"{admin}/files", timeout=5).json()["files"]
    assert [(f["room_id"], f["type"], f["status"]) for f in files] == [
        ("auto-1", "1", 2),
        ("auto-1", "2", 2),
        ("auto-1", "2", 2),
    ]
    assert files[0]["file_duration"] == 60 and files[0]["file_name"].endswith(".mp4")
    assert listed(http, sim)["cnt"]["cnt"] == 3
    bad = http.post(f"{admin}/record", json={"room_id": "x", "start": 5, "end": 1})
    assert bad.status_code == 400 and "error" in bad.json()
    assert http.get(f"{admin}/nowhere").status_code == 404
    assert http.get(f"{sim.base_url}/anyapi/v1/nowhere").status_code == 404


def test_cli_starts_prints_one_line_and_stops_on_sigterm() -> None:
    env = {**os.environ, "ANYRTC_VOD_TOKEN": "cli-secret-token", "ANYRTC_APP_ID": "cli-app"}
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "worker.simulator", "--port", "0", "--seed", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("anyRTC simulator listening on http://127.0.0.1:")
        assert "/anyapi/v1" in line and "/oauth/anyapi/v1" in line and "app cli-app)" in line
        base = line.split()[4]
        session = requests.Session()
        session.trust_env = False
        assert session.get(f"{base}/_admin/health", timeout=5).json()["ok"] is True
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
        assert process.returncode == 0
        assert "cli-secret-token" not in line + out + err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_listen_backlog_takes_a_top_of_the_hour_burst(sim: SimulatorHandle) -> None:
    """The kernel's accept queue for the simulator's socket is as deep as a production front
    end's: with socketserver's default of 5, a burst of new connections loses SYNs and clients
    see resets and 1 s stalls that the vendor would not cause."""
    if shutil.which("ss") is None:
        pytest.skip("needs iproute2's ss to read the listen backlog")
    port = urlsplit(sim.record_api_url).port
    listing = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    # A listening socket's line: State Recv-Q Send-Q Local Peer; Send-Q is the backlog.
    assert listing[0] == "LISTEN"
    assert int(listing[2]) >= 512

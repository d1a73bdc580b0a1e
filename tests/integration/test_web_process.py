"""The Procfile's ``web`` line, run as written: it needs a token, serves callbacks, answers
hostile input with 4xx only, and never logs the token (gunicorn's own logs included)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.celery import EVENTS_QUEUE
from config.settings import get_settings
from tests.support.net import free_port
from tests.support.waiting import wait_until
from tests.support.web import raw_request, web_env, web_line
from tests.support.workers import running_worker
from worker.demo.procfile import read_procfile
from worker.discovery.intake import CallbackIntake
from worker.discovery.keys import DiscoveryKeys
from worker.discovery.ops import OpsLog

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "cb-secret-91x/+="  # characters that a URL percent-encodes, so both forms are scrubbed
QUOTED_TOKEN = "cb-secret-91x%2F%2B%3D"
CALLBACK = {
    "type": "1",
    "mediaType": "audio/video",
    "userId": "",
    "groupId": "web-room",
    "startTime": "1764050400",
    "endTime": "1764050460",
    "fileName": "web_room_x.mp4",
    "fileSize": 1234,
    "duration": 60,
    "downloadUrl": "http://vod.example/web-room.mp4",
    "userData": "",
}


def test_web_line_serves_callbacks_and_hides_the_token(redis_client: Any, tmp_path: Path) -> None:
    log_path = tmp_path / "web.log"
    with web_line(log_path, TOKEN) as base:
        accepted = requests.post(f"{base}/AR/V1/av", params={"token": TOKEN}, json=CALLBACK)
        refused = requests.post(f"{base}/AR/V1/av?token=wrong", json=CALLBACK, timeout=5)
        # A request line gunicorn itself refuses, logged by gunicorn verbatim: token included.
        bad_line = raw_request(base, f"GET /AR/V1/av?token={TOKEN}\r\n\r\n".encode())
        bad_quoted = raw_request(base, f"GET /?token={QUOTED_TOKEN}\0 HTTP/1.1\r\n\r\n".encode())
    assert accepted.status_code == 200 and accepted.json()["code"] == 0
    assert refused.status_code in (401, 403) and refused.json()["code"] != 0
    assert bad_line.startswith(b"HTTP/1.1 400") and bad_quoted.startswith(b"HTTP/1.1 400")
    output = log_path.read_text()
    assert '"POST /AR/V1/av" 200' in output  # the access log is there ...
    assert output.count("Invalid request from ip=") == 2  # ... and gunicorn's error log too ...
    assert TOKEN not in output and QUOTED_TOKEN not in output  # ... without the token


def test_web_line_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    result = subprocess.run(
        ["sh", "-c", f"exec {read_procfile()['web']}"],
        cwd=ROOT, env=web_env(free_port(), ""), capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    assert result.returncode != 0
    assert "CALLBACK_TOKEN is not set" in result.stdout + result.stderr
    assert "CALLBACK_AUTH=off" in result.stdout + result.stderr


def test_a_chunked_body_over_the_limit_is_413(redis_client: Any, tmp_path: Path) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"groupId": "r", "userData": "'
        for _ in range(8):
            yield b"x" * 1024
        yield b'"}'

    with web_line(tmp_path / "web.log", TOKEN, CALLBACK_MAX_BODY_BYTES="4096") as base:
        response = requests.post(
            f"{base}/AR/V1/av", params={"token": TOKEN}, data=chunks(), timeout=10
        )
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 413 and "4096 bytes" in response.json()["message"]


# --- whatever the body: 2xx or 4xx, and nothing fails afterwards -----------------------------

_SURROGATES = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1)
_TEXT = st.text() | _SURROGATES
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=20,
)
# Near-valid callbacks reach the field checks: the example with some fields replaced.
_NEAR = st.dictionaries(st.sampled_from(sorted(CALLBACK)), _JSON, max_size=4).map(
    lambda changes: {**CALLBACK, **changes}
)


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log_path = tmp_path_factory.mktemp("web") / "web.log"
    with web_line(log_path, TOKEN) as base:
        yield base
    assert TOKEN not in log_path.read_text()


def _post(base: str, body: bytes) -> int:
    url = f"{base}/AR/V1/av"
    headers = {"X-Callback-Token": TOKEN, "Content-Type": "application/json"}
    status = requests.post(url, data=body, headers=headers, timeout=10).status_code
    assert 200 <= status < 300 or 400 <= status < 500, f"HTTP {status} for {body[:200]!r}"
    return status


_FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_FAST
@given(body=st.binary(max_size=2048))
def test_arbitrary_bytes_get_2xx_or_4xx(web: str, body: bytes) -> None:
    _post(web, body)


@_FAST
@given(value=_JSON | _NEAR, ascii_only=st.booleans())
def test_arbitrary_json_gets_2xx_or_4xx(web: str, value: Any, ascii_only: bool) -> None:
    try:
        body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    except ValueError:  # NaN is allowed by json.dumps; a float key is fine: nothing to skip
        body = b"null"
    _post(web, body)


@pytest.mark.slow
def test_nothing_accepted_fails_in_the_worker(web: str, redis_url: str) -> None:
    """Every accepted body of the property tests above (and some of its own) is handled by a
    real discovery worker without one task failure; the intake ends empty. (Not the
    ``redis_client`` fixture: it would wipe what the property tests left to handle.)"""
    redis_client = redis.Redis.from_url(redis_url, decode_responses=True)
    for value in ({**CALLBACK, "groupId": f"room-{n}"} for n in range(5)):
        assert _post(web, json.dumps(value).encode()) == 200
    keys = DiscoveryKeys(get_settings().redis_key_prefix)
    intake = CallbackIntake(redis_client, keys)
    assert intake.count() >= 5
    with running_worker(queues=(EVENTS_QUEUE,), concurrency=2) as worker:
        wait_until(lambda: intake.count() == 0, 30, "the intake to drain")
        log = worker.log()
    assert "raised unexpected" not in log and "Traceback" not in log
    assert not [e for e in OpsLog(redis_client, keys).entries("errors", 100)
                if e["kind"].startswith("callback")]  # fmt: skip

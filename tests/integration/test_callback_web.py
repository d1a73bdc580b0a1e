"""The callback receiver: each bad callback gets its 4xx, is recorded, never leaks the token."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from pydantic import SecretStr

from worker.discovery.intake import CallbackIntake
from worker.discovery.keys import DiscoveryKeys
from worker.discovery.ops import OpsLog
from worker.redis import redis_from_url
from worker.web.app import CALLBACK_PATH, create_app

pytestmark = pytest.mark.integration

EXAMPLE = json.loads(
    (
        Path(__file__).resolve().parents[1] / "fixtures" / "spec_examples" / "callback.json"
    ).read_text(encoding="utf-8")
)
TOKEN = "cb-token-Zq81!"


@pytest.fixture
def sent() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def ops(settings: Any, redis_client: redis.Redis) -> OpsLog:
    return OpsLog(redis_client, DiscoveryKeys(settings.redis_key_prefix))


def _client(settings: Any, sent: list[dict[str, Any]], **update: Any) -> FlaskClient:
    app = create_app(settings.model_copy(update=update), sender=sent.append)
    return app.test_client()


@pytest.fixture
def open_client(
    settings: Any, sent: list[dict[str, Any]], redis_client: redis.Redis
) -> FlaskClient:
    return _client(settings, sent, callback_auth="off")


@pytest.fixture
def guarded(settings: Any, sent: list[dict[str, Any]], redis_client: redis.Redis) -> FlaskClient:
    return _client(settings, sent, callback_token=SecretStr(TOKEN))


def test_the_guide_example_is_accepted_and_enqueued_as_plain_json(
    open_client: FlaskClient, sent: list[dict[str, Any]]
) -> None:
    response = open_client.post(CALLBACK_PATH, json=EXAMPLE)
    assert response.status_code == 200
    assert response.get_json() == {"code": 0, "success": True, "message": "accepted"}
    (payload,) = sent
    assert json.loads(json.dumps(payload)) == payload
    assert payload["groupId"] == "123888" and payload["downloadUrl"] == EXAMPLE["downloadUrl"]
    assert payload["startTime"] == "2018-03-21T05:06:27Z"


def test_a_body_without_json_content_type_is_still_read(
    open_client: FlaskClient, sent: list[dict[str, Any]]
) -> None:
    response = open_client.post(CALLBACK_PATH, data=json.dumps(EXAMPLE), content_type="text/plain")
    assert response.status_code == 200 and len(sent) == 1


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"\xff\xfe", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object, not list"),
        (json.dumps({**EXAMPLE, "fileSize": "big"}).encode(), 422, "fileSize"),
        (json.dumps({**EXAMPLE, "type": "9"}).encode(), 422, "type"),
        (json.dumps({**EXAMPLE, "startTime": "yesterday"}).encode(), 422, "startTime"),
        (json.dumps({**EXAMPLE, "downloadUrl": "ftp://x/y.mp4"}).encode(), 422, "downloadUrl"),
        (json.dumps({k: v for k, v in EXAMPLE.items() if k != "groupId"}).encode(), 422, "groupId"),
        (b"{}", 422, "downloadUrl"),
        # The hostile but well-authenticated bodies of issue 13: each a 4xx, none published.
        (b"[" * 5000 + b"]" * 5000, 400, "nested"),
        (b'{"a":' * 20 + b"1" + b"}" * 20, 400, "nested"),
        (json.dumps({**EXAMPLE, "fileName": "\ud800.mp4"}).encode(), 400, "surrogate"),
        (rb'{"groupId": "r", "x\udc00": 1}', 400, "surrogate"),
        (json.dumps({**EXAMPLE, "downloadUrl": "http://[::1/a.mp4"}).encode(), 422, "URL"),
        (json.dumps({**EXAMPLE, "downloadUrl": "http://h:99999/a.mp4"}).encode(), 422, "URL"),
        (json.dumps({**EXAMPLE, "downloadUrl": "http://"}).encode(), 422, "host"),
        (json.dumps({**EXAMPLE, "downloadUrl": "http://h/a b.mp4"}).encode(), 422, "white"),
        (json.dumps({**EXAMPLE, "groupId": "   "}).encode(), 422, "blank"),
        (json.dumps({**EXAMPLE, "groupId": "r\u0000"}).encode(), 422, "control"),
        (json.dumps({**EXAMPLE, "groupId": "r" * 201}).encode(), 422, "groupId"),
        (json.dumps({**EXAMPLE, "fileSize": int("9" * 400)}).encode(), 422, "fileSize"),
        (json.dumps({**EXAMPLE, "fileSize": "9" * 400}).encode(), 422, "fileSize"),
        (json.dumps({**EXAMPLE, "duration": True}).encode(), 422, "duration"),
        (json.dumps({**EXAMPLE, "startTime": "1"}).encode(), 422, "plausible"),
        (json.dumps({**EXAMPLE, "endTime": "2018-13-40 10:00:00"}).encode(), 422, "endTime"),
        (b'{"groupId": "r", "fileSize": NaN}', 400, "not valid JSON"),
    ],
)
def test_each_bad_callback_gets_its_4xx_and_is_recorded(
    open_client: FlaskClient,
    sent: list[dict[str, Any]],
    ops: OpsLog,
    body: bytes,
    status: int,
    needle: str,
) -> None:
    response = open_client.post(CALLBACK_PATH, data=body, content_type="application/json")
    assert response.status_code == status
    answer = response.get_json()
    assert answer["code"] == status and answer["success"] is False and needle in answer["message"]
    assert sent == []
    (entry,) = ops.entries("rejects")
    assert entry["status"] == status and needle in entry["reason"]
    assert entry["body"] == body[:500].decode("utf-8", "replace") + ("…" if len(body) > 500 else "")
    assert ops.stats()["callback_rejected"] == 1


def test_too_large_a_body_is_413_with_json(
    settings: Any, sent: list[dict[str, Any]], ops: OpsLog
) -> None:
    client = _client(settings, sent, callback_max_body_bytes=1024, callback_auth="off")
    response = client.post(CALLBACK_PATH, json={**EXAMPLE, "userData": "x" * 2000})
    assert response.status_code == 413
    assert response.get_json()["code"] == 413 and "1024 bytes" in response.get_json()["message"]
    assert sent == [] and ops.entries("rejects")[0]["status"] == 413


def test_token_is_required_when_configured(
    guarded: FlaskClient, sent: list[dict[str, Any]], ops: OpsLog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    missing = guarded.post(CALLBACK_PATH, json=EXAMPLE)
    wrong = guarded.post(f"{CALLBACK_PATH}?token=nope-{TOKEN}", json=EXAMPLE)
    wrong_header = guarded.post(CALLBACK_PATH, json=EXAMPLE, headers={"X-Callback-Token": "x"})
    assert (missing.status_code, wrong.status_code, wrong_header.status_code) == (401, 403, 403)
    assert missing.get_json()["code"] == 401 and "token required" in missing.get_json()["message"]
    assert sent == []
    by_query = guarded.post(f"{CALLBACK_PATH}?token={TOKEN}", json=EXAMPLE)
    by_header = guarded.post(CALLBACK_PATH, json=EXAMPLE, headers={"X-Callback-Token": TOKEN})
    assert (by_query.status_code, by_header.status_code) == (200, 200)
    assert len(sent) == 2
    assert len(ops.entries("rejects")) == 3
    recorded = json.dumps(ops.entries("rejects")) + caplog.text + json.dumps(sent)
    assert TOKEN not in recorded


def test_a_token_pasted_into_a_body_is_scrubbed_from_the_reject(
    guarded: FlaskClient, ops: OpsLog
) -> None:
    response = guarded.post(f"{CALLBACK_PATH}?token={TOKEN}", data=f'{{"oops": "{TOKEN}"')
    assert response.status_code == 400
    assert TOKEN not in json.dumps(ops.entries("rejects"))


def test_an_enqueue_failure_still_keeps_the_stored_callback(
    settings: Any, ops: OpsLog, redis_client: redis.Redis
) -> None:
    def broken(_: dict[str, Any]) -> None:
        raise ConnectionError("broker down")

    open_settings = settings.model_copy(update={"callback_auth": "off"})
    client = create_app(open_settings, sender=broken).test_client()
    response = client.post(CALLBACK_PATH, json=EXAMPLE)
    # Stored before the answer: the next poll drains it, so the vendor is told yes.
    assert response.status_code == 200
    (stored,) = CallbackIntake(redis_client, DiscoveryKeys(settings.redis_key_prefix)).stale(-60)
    assert stored["downloadUrl"] == EXAMPLE["downloadUrl"]
    assert ops.entries("rejects") == [] and ops.entries("errors")[0]["kind"] == "callback-enqueue"


def test_redis_down_is_503_and_nothing_is_acknowledged(settings: Any) -> None:
    sent: list[dict[str, Any]] = []
    dead = redis_from_url("redis://127.0.0.1:1/0")
    open_settings = settings.model_copy(update={"callback_auth": "off"})
    client = create_app(open_settings, sender=sent.append, client=dead).test_client()
    response = client.post(CALLBACK_PATH, json=EXAMPLE)
    assert response.status_code == 503 and response.get_json()["success"] is False
    assert sent == []


def test_wrong_method_and_unknown_path_answer_json(open_client: FlaskClient) -> None:
    assert open_client.get(CALLBACK_PATH).get_json()["code"] == 405
    assert open_client.post("/nope").get_json()["code"] == 404


def test_healthz_reports_redis(settings: Any, open_client: FlaskClient) -> None:
    assert open_client.get("/healthz").get_json() == {"ok": True, "redis": "ok"}
    dead = redis_from_url("redis://127.0.0.1:1/0")
    open_settings = settings.model_copy(update={"callback_auth": "off"})
    down = create_app(open_settings, sender=lambda _: None, client=dead).test_client()
    response = down.get("/healthz")
    assert response.status_code == 503 and response.get_json()["ok"] is False

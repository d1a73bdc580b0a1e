"""Neither the vod token nor the callback token reaches logs (of any process), task results,
Redis state, broker messages or the simulator's admin views."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from tests.support.run import TEST_PREFIX
from tests.support.waiting import wait_until
from tests.support.web import raw_request, web_line
from tests.support.workers import running_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _all_values(client: redis.Redis) -> list[str]:
    """Every key and value of this test run, whatever the key type."""
    found: list[str] = []
    for key in client.scan_iter(match=f"*{TEST_PREFIX}*", count=1000):
        kind = client.type(key)
        found.append(key)
        if kind == "string":
            found.append(client.get(key) or "")
        elif kind == "hash":
            found.append(json.dumps(client.hgetall(key)))
        elif kind == "list":
            found.extend(client.lrange(key, 0, -1))
        elif kind == "set":
            found.extend(client.smembers(key))
        elif kind == "zset":
            found.extend(member for member, _ in client.zrange(key, 0, -1, withscores=True))
        elif kind == "stream":
            found.append(json.dumps(client.xrange(key)))
    return found


def test_token_never_leaks(redis_client: Any, sim: Any, settings: Any) -> None:
    from worker.celery import app

    token = settings.anyrtc_vod_token.get_secret_value()
    sim.configure(rate_limit=100, upload_delay_s=0.0, transcode_delay_s=0.2)
    env = {"LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG", "QUERY_RATE_PERIOD_S": "2"}
    with running_worker(env=env) as worker:
        app.send_task("recordings.start", kwargs={"room_id": "leak-room"}).get(timeout=20)
        wait_until(lambda: sim.journal("startrecord"), 20.0)
        app.send_task("recordings.stop", kwargs={"room_id": "leak-room"}).get(timeout=20)
        wait_until(lambda: sim.journal("stoprecord"), 20.0)
        # An error path too: the vendor rejects the signature, so the worker logs a failure.
        sim.configure(inject_next=[{"endpoint": "getVodListByTime", "code": 281}])
        app.send_task("discovery.poll")  # keeps no result: watch the vendor's journal instead
        wait_until(lambda: any(e["code"] == 281 for e in sim.journal("getVodListByTime")), 20.0)
        app.send_task("discovery.poll")
        wait_until(lambda: any(e["code"] == 200 for e in sim.journal("getVodListByTime")), 20.0)
        time.sleep(1.0)  # let the worker write its last log lines
        log = worker.log()

    lines = [line for line in log.splitlines() if line.startswith("{")]
    assert lines, "LOG_FORMAT=json produced no JSON lines"
    assert any(json.loads(line)["level"] == "DEBUG" for line in lines)
    assert token not in log
    values = _all_values(redis_client)
    assert any(TEST_PREFIX in v for v in values)  # the scan really saw this run's keys
    assert not [v for v in values if token in v]


def test_no_token_in_any_process_log_after_hostile_requests(
    redis_client: Any, sim: Any, settings: Any, tmp_path: Path
) -> None:
    """Both tokens, sent where they do not belong (a request line gunicorn refuses, a wrong
    token, a body), and the callback token in the simulator's callback URL: no log of any
    process, no Redis value, no admin view of the simulator shows either."""
    vod_token = settings.anyrtc_vod_token.get_secret_value()
    callback_token = f"cb-leak-{uuid.uuid4().hex[:8]}"
    web_log = tmp_path / "web.log"
    env = {"LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG", "CALLBACK_TOKEN": callback_token}
    with web_line(web_log, callback_token) as base, running_worker(env=env) as worker:
        sim.configure(
            callback_url=f"{base}/AR/V1/av?token={callback_token}",
            upload_delay_s=0.0,
            transcode_delay_s=0.2,
        )
        for token in (callback_token, vod_token):
            for line in (
                f"GET /AR/V1/av?token={token}\r\n",
                f"POST /?token={token}\0 HTTP/1.1\r\n",
            ):
                assert raw_request(base, f"{line}\r\n".encode()).startswith(b"HTTP/1.1 400")
        wrong = requests.post(f"{base}/AR/V1/av", params={"token": vod_token}, data=b"{}")
        pasted = requests.post(
            f"{base}/AR/V1/av", params={"token": callback_token}, data=f'{{"x": "{vod_token}"'
        )
        assert (wrong.status_code, pasted.status_code) == (403, 400)
        sim.record("leak-cb-room", time.time() - 60, time.time() - 1)
        wait_until(lambda: [e for e in sim.journal("callback") if e["code"] == 200], 20.0)
        wait_until(lambda: not redis_client.zcard(_intake_at(settings)), 20.0, "the intake")
        time.sleep(0.5)  # let both processes write their last lines
        logs = {"worker": worker.log(), "web": web_log.read_text()}
    admin = {
        name: requests.get(f"{sim.base_url}/_admin/{name}", timeout=5).text
        for name in ("config", "journal", "files", "rooms")
    }
    assert "Invalid request from ip=" in logs["web"]  # gunicorn did log the lines
    for token in (callback_token, vod_token):
        for name, text in {**logs, **admin}.items():
            assert token not in text, f"{name} shows a token"
        assert not [v for v in _all_values(redis_client) if token in v]


def _intake_at(settings: Any) -> str:
    from worker.discovery.keys import DiscoveryKeys

    return DiscoveryKeys(settings.redis_key_prefix).intake_at

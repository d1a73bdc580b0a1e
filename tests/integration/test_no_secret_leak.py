"""The vod token never reaches logs, task results, Redis state or broker messages."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from tests.support.run import TEST_PREFIX
from tests.support.waiting import wait_until
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

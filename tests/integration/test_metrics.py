"""``/metrics`` after a run with a failed booking, a delivered file and a refused callback,
through a real worker subprocess, the real broker, the simulator and the web app on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests
from kombu import Connection, Exchange, Queue
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from schedules.keys import LifecycleKeys
from schedules.recording_log import RecordingLog
from schedules.state import StateReader
from tests.support.waiting import wait_until
from tests.support.web import serving
from tests.support.workers import running_worker
from worker.anyrtc import results
from worker.anyrtc.client import AnyRTCClient
from worker.web.app import CALLBACK_PATH, create_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "metrics-test-callback-token-Q2z"
AUTH = ("prom", "metrics-test-pw-9k")


@pytest.fixture
def tuned(settings: Any) -> Any:
    return settings.model_copy(
        update={
            "callback_token": SecretStr(TOKEN),
            "metrics_basic_auth": SecretStr(f"{AUTH[0]}:{AUTH[1]}"),
            "downstream_queues": f"{settings.redis_key_prefix}-m=recording.*",
        }
    )


@pytest.fixture
def web_url(tuned: Any, redis_client: redis.Redis) -> Iterator[str]:
    with serving(create_app(tuned)) as url:
        yield url
    redis_client.delete(f"{tuned.downstream_exchange}.audit")


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(f"{url}/metrics", auth=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_metrics_show_a_failed_booking_a_delivered_file_and_a_refused_callback(
    tuned: Any,
    vendor: Any,
    redis_client: redis.Redis,
    web_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from worker.celery import app as celery_app

    vendor.configure(
        upload_delay_s=0.1,
        transcode_delay_s=0.3,
        callback_url=f"{web_url}{CALLBACK_PATH}?token={TOKEN}",
        inject_next=[{"endpoint": "startrecord", "result": results.IP_NOT_ALLOWED}],
    )
    env = {"CALLBACK_TOKEN": TOKEN, "DOWNSTREAM_QUEUES": tuned.downstream_queues}
    exchange = Exchange(tuned.downstream_exchange, "topic", durable=True)
    customer = Queue(f"{tuned.redis_key_prefix}-m", exchange, "recording.*", durable=True)
    with (
        Connection(tuned.downstream_broker_url) as conn,
        running_worker(concurrency=4, env=env),
    ):
        customer(conn.default_channel).declare()
        celery_app.send_task("recordings.start", kwargs={"room_id": "m-room", "booking_id": "m-b"})
        reader = StateReader(redis_client, LifecycleKeys(tuned.redis_key_prefix))
        wait_until(lambda: getattr(reader.booking("m-b"), "state", "") == "failed", 20.0)

        client = AnyRTCClient.from_settings(tuned)
        log = RecordingLog(redis_client, tuned.redis_key_prefix)
        client.start_record("m-file-room")
        log.started("m-file-room", time.time(), ["m-file-b"])
        time.sleep(1.1)
        client.stop_record("m-file-room")
        log.stopped("m-file-room", time.time())
        outbox = f"{{{tuned.redis_key_prefix}}}:disc:outbox:*"
        wait_until(
            lambda: any(
                redis_client.hget(k, "state") == "sent"
                for k in redis_client.scan_iter(outbox, _type="hash")
            ),
            20.0,
        )
        refused = requests.post(f"{web_url}{CALLBACK_PATH}?token=wrong", json={}, timeout=5)
        assert refused.status_code in (401, 403)

        assert requests.get(f"{web_url}/metrics", timeout=5).status_code == 401
        got = scrape(web_url)

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert value("anyrtc_bookings", state="failed") == 1
    assert value("anyrtc_vendor_calls_total", endpoint="startrecord", outcome="fail",
                 code=results.IP_NOT_ALLOWED) == 1  # fmt: skip
    assert value("anyrtc_action_lateness_seconds_count") == 1
    assert value("anyrtc_action_lateness_seconds_bucket", le="+Inf") == 1
    assert value("anyrtc_files_delivered_total", source="callback", status="ready") == 1
    assert value("anyrtc_file_delivery_lag_seconds_count") == 1
    assert value("anyrtc_callbacks_total", verdict="rejected") == 1
    assert value("anyrtc_callbacks_total", verdict="accepted") >= 1
    assert value("anyrtc_dead_letters", replayed="false") == 1
    assert value("anyrtc_query_budget_limit") == tuned.query_rate_limit
    assert value("anyrtc_outbox_pending") == 0
    assert value("anyrtc_queue_messages", queue="lifecycle", consumed="true") == 0
    assert value("anyrtc_queue_messages", queue="celery", consumed="true") == 0
    for secret in (TOKEN, tuned.anyrtc_vod_token.get_secret_value(), AUTH[1]):
        assert secret not in str(got)

    # The console answers for the same run.
    from worker.cli import main

    def console(*argv: str) -> Any:
        assert main([*argv, "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    shown = console("show", "m-b")
    assert shown["booking"]["state"] == "failed"
    assert shown["booking"]["code"] == results.IP_NOT_ALLOWED
    [delivered] = console("files", "m-file-b")
    assert delivered["source"] == "callback" and delivered["state"] == "sent"
    refused_entries = console("rejects")
    assert refused_entries["total"] == 1

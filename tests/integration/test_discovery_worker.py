"""Through a real Celery worker subprocess: web app -> discovery.callback -> topic exchange ->
a kombu consumer; the same file polled later is not published again; a poll denied by the
budget is re-queued with the limiter's countdown. No secret reaches a log, message or key."""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from kombu import Connection, Exchange, Queue
from pydantic import SecretStr

from schedules.recording_log import RecordingLog
from tests.support.brokers import Broker
from tests.support.waiting import wait_until
from tests.support.web import serving
from tests.support.workers import running_worker
from worker.anyrtc.client import AnyRTCClient
from worker.discovery.keys import DiscoveryKeys
from worker.discovery.limiter import SlidingWindowLimiter
from worker.web.app import CALLBACK_PATH, celery_sender, create_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "worker-test-callback-token-7Hq"


@pytest.fixture
def tuned(settings: Any, broker: Broker) -> Any:
    """Scaled-down settings on ``broker``: the test runs on Redis, then on RabbitMQ."""
    return broker.settings(
        settings.model_copy(
            update={
                "query_rate_period_s": 1.0,
                "query_rate_margin_s": 0.02,
                "poll_interval_s": 1.0,
                "callback_token": SecretStr(TOKEN),
                "downstream_queues": f"{settings.redis_key_prefix}-customer=recording.*",
            }
        )
    )


@pytest.fixture
def celery_app(broker: Broker, tuned: Any) -> Iterator[Celery]:
    """What the web process and the test send through: the product's configuration on ``broker``."""
    with broker.app(tuned) as app:
        yield app


@pytest.fixture(autouse=True)
def _audit_queue(tuned: Any, redis_client: redis.Redis) -> Iterator[None]:
    yield
    redis_client.delete(f"{tuned.downstream_exchange}.audit")


@pytest.fixture
def web_url(tuned: Any, celery_app: Celery, redis_client: redis.Redis) -> Iterator[str]:
    with serving(create_app(tuned, sender=functools.partial(celery_sender, app=celery_app))) as url:
        yield url


def _drain(conn: Connection, queue: Queue, expect: int, timeout: float) -> list[Any]:
    got: list[Any] = []

    def on_message(body: dict[str, Any], message: Any) -> None:
        got.append((body, message))
        message.ack()

    with conn.Consumer(queue, callbacks=[on_message], accept=["json"]):
        deadline = time.monotonic() + timeout
        while len(got) < expect and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError, socket.timeout):
                conn.drain_events(timeout=0.2)
    return got


def _all_values(client: redis.Redis, pattern: str) -> str:
    dump = []
    for key in client.scan_iter(match=pattern, count=1000):
        kind = client.type(key)
        if kind == "string":
            dump.append(str(client.get(key)))
        elif kind == "hash":
            dump.append(json.dumps(client.hgetall(key)))
        elif kind == "list":
            dump.extend(client.lrange(key, 0, -1))
        elif kind == "set":
            dump.extend(client.smembers(key))
        elif kind == "zset":
            dump.extend(client.zrange(key, 0, -1))
    return "\n".join(dump)


def test_callback_and_poll_through_a_real_worker_give_one_message(
    tuned: Any,
    broker: Broker,
    celery_app: Celery,
    sim: Any,
    redis_client: redis.Redis,
    web_url: str,
) -> None:
    sim.configure(
        rate_limit=5,
        rate_period_s=1.0,
        upload_delay_s=0.1,
        transcode_delay_s=0.3,
        callback_url=f"{web_url}{CALLBACK_PATH}?token={TOKEN}",
    )
    exchange = Exchange(tuned.downstream_exchange, "topic", durable=True)
    customer = Queue(f"{tuned.redis_key_prefix}-customer", exchange, "recording.*", durable=True)
    env = {
        "QUERY_RATE_PERIOD_S": "1",
        "QUERY_RATE_MARGIN_S": "0.02",
        "POLL_INTERVAL_S": "1",
        "CALLBACK_TOKEN": TOKEN,
        "DOWNSTREAM_QUEUES": tuned.downstream_queues,
        **broker.env,
    }
    keys = DiscoveryKeys(tuned.redis_key_prefix)
    with (
        Connection(tuned.downstream_broker_url) as conn,
        running_worker(queues=("query", "events"), concurrency=4, env=env) as worker,
    ):
        assert broker.serves(worker.log()), worker.log()
        customer(conn.default_channel).declare()  # the customer binds before going live
        vendor = AnyRTCClient.from_settings(tuned)
        log = RecordingLog(redis_client, tuned.redis_key_prefix)
        vendor.start_record("room-w")
        log.started("room-w", time.time(), ["booking-w"])
        time.sleep(1.1)
        vendor.stop_record("room-w")
        log.stopped("room-w", time.time())

        ((body, message),) = _drain(conn, customer, expect=1, timeout=15)
        assert body["source"] == "callback" and body["room_id"] == "room-w"
        assert body["booking_id"] == "booking-w" and body["schema"] == "recording.v1"
        assert message.delivery_info["routing_key"] == "recording.ready"
        assert message.properties["delivery_mode"] == 2
        assert [e["code"] for e in sim.journal("callback")] == [200]

        # The poll finds the same file: no second message.
        celery_app.send_task("discovery.poll")
        wait_until(lambda: redis_client.get(keys.poll_watermark), 15.0)
        assert _drain(conn, customer, expect=1, timeout=1.0) == []

        # A poll denied by the budget is re-queued with the limiter's countdown.
        limiter = SlidingWindowLimiter(
            redis_client, keys, limit=tuned.query_rate_limit, period_s=1.0, margin_s=0.02
        )
        limiter.close(tuned.anyrtc_app_id)
        before = redis_client.get(keys.poll_watermark)
        celery_app.send_task("discovery.poll")
        wait_until(lambda: redis_client.get(keys.poll_watermark) != before, 15.0)
        worker_log = worker.log()
        assert "Retry in" in worker_log
        assert [e["code"] for e in sim.journal("getVodListByTime")] == [200, 200]

        secrets = (TOKEN, tuned.anyrtc_vod_token.get_secret_value())
        # ``*prefix*``: discovery's keys start with the hash tag ``{prefix}``.
        stored = _all_values(redis_client, f"*{tuned.redis_key_prefix}*")
        assert body["download_url"] in stored  # the scan really saw the file's records
        for secret in secrets:
            assert secret not in worker_log
            assert secret not in json.dumps(body)
            assert secret not in stored

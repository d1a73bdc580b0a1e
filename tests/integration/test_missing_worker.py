"""recording.missing and callback silence through real discovery worker processes, the
simulator over loopback and a kombu customer bound to ``recording.*`` (time scaled down by
settings: MISSING_AFTER_S=2, CALLBACK_SILENCE_S=2, a one-second budget period).

- a recorded session whose files the simulator never produces: exactly one room look-up (the
  simulator's journal), exactly one ``recording.missing``; a file that arrives later is
  delivered and nothing else follows;
- the worker that claimed the ``recording.missing`` message is SIGKILLed before it could
  publish: the next worker publishes it once, with the same id;
- files found only by polling while a room's callbacks never come: the silence warning is
  logged once, shown by the shared state, and cleared once when a callback comes.
"""

from __future__ import annotations

import contextlib
import functools
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
from tests.support.workers import WorkerProcess, running_worker
from worker.anyrtc.client import AnyRTCClient
from worker.discovery.keys import DiscoveryKeys
from worker.discovery.missing_message import ROUTING_KEY, missing_message_id
from worker.discovery.silence import CallbackSilence
from worker.web.app import CALLBACK_PATH, celery_sender, create_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "missing-test-callback-token"


@pytest.fixture
def tuned(settings: Any, redis_url: str) -> Any:
    broker = Broker("redis", settings.broker_url, settings.downstream_broker_url)
    return broker.settings(
        settings.model_copy(
            update={
                "query_rate_period_s": 1.0,
                "query_rate_margin_s": 0.02,
                "poll_interval_s": 1.0,
                "callback_grace_s": 0.0,
                "missing_after_s": 2.0,
                "callback_silence_s": 2.0,
                "callback_token": SecretStr(TOKEN),
                "downstream_queues": f"{settings.redis_key_prefix}-customer=recording.*",
            }
        )
    )


@pytest.fixture
def env(tuned: Any) -> dict[str, str]:
    return {
        "QUERY_RATE_PERIOD_S": "1",
        "QUERY_RATE_MARGIN_S": "0.02",
        "POLL_INTERVAL_S": "1",
        "CALLBACK_GRACE_S": "0",
        "MISSING_AFTER_S": "2",
        "CALLBACK_SILENCE_S": "2",
        "CALLBACK_TOKEN": TOKEN,
        "DOWNSTREAM_QUEUES": tuned.downstream_queues,
    }


@pytest.fixture
def celery_app(tuned: Any) -> Iterator[Celery]:
    with Broker("redis", tuned.broker_url, tuned.downstream_broker_url).app(tuned) as app:
        yield app


@pytest.fixture
def customer(tuned: Any, redis_client: redis.Redis) -> Iterator[tuple[Connection, Queue]]:
    exchange = Exchange(tuned.downstream_exchange, "topic", durable=True)
    queue = Queue(f"{tuned.redis_key_prefix}-customer", exchange, "recording.*", durable=True)
    with Connection(tuned.downstream_broker_url) as conn:
        queue(conn.default_channel).declare()  # the customer binds before going live
        yield conn, queue
    redis_client.delete(f"{tuned.downstream_exchange}.audit")


def drain(
    customer: tuple[Connection, Queue], *, expect: int = 0, timeout: float
) -> list[tuple[dict[str, Any], Any]]:
    """Messages until ``expect`` came (then ``timeout`` has ended) or ``timeout`` passed."""
    conn, queue = customer
    got: list[tuple[dict[str, Any], Any]] = []

    def on_message(body: dict[str, Any], message: Any) -> None:
        got.append((body, message))
        message.ack()

    with conn.Consumer(queue, callbacks=[on_message], accept=["json"]):
        deadline = time.monotonic() + timeout
        while (expect == 0 or len(got) < expect) and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError, socket.timeout):
                conn.drain_events(timeout=0.2)
    return got


def record_ours(tuned: Any, redis_client: redis.Redis, room: str, booking: str) -> None:
    """What the lifecycle does for a booked window: start, log, stop, log."""
    vendor = AnyRTCClient.from_settings(tuned)
    log = RecordingLog(redis_client, tuned.redis_key_prefix)
    vendor.start_record(room)
    log.started(room, time.time(), [booking])
    time.sleep(1.1)
    vendor.stop_record(room)
    log.stopped(room, time.time())


def room_lookups(sim: Any, room: str) -> list[dict[str, Any]]:
    return [c for c in sim.journal("getVodInfoByRoomId") if c["params"]["roomId"] == room]


def test_a_session_without_files_gives_one_missing_after_one_look_up_then_a_late_file(
    tuned: Any,
    env: dict[str, str],
    vendor: Any,
    celery_app: Celery,
    customer: tuple[Connection, Queue],
    redis_client: redis.Redis,
) -> None:
    vendor.configure(
        rate_limit=5, rate_period_s=1.0, upload_delay_s=0.1, transcode_delay_s=0.2,
        no_file_rooms=["room-m"],
    )  # fmt: skip
    with running_worker(queues=("query", "events"), concurrency=4, env=env) as worker:
        started = time.time()
        record_ours(tuned, redis_client, "room-m", "booking-m")
        stopped = time.time()
        got = drain(customer, expect=1, timeout=20.0)
        got += drain(customer, timeout=3.0)  # and nothing more
        assert len(got) == 1, worker.log()
        body, message = got[0]
        assert message.delivery_info["routing_key"] == ROUTING_KEY
        [session] = RecordingLog(redis_client, tuned.redis_key_prefix).for_room("room-m")
        assert body["message_id"] == missing_message_id(session.session_id)
        assert message.properties["message_id"] == body["message_id"]
        assert (body["room_id"], body["booking_ids"]) == ("room-m", ["booking-m"])
        assert body["room_lookup"]["outcome"] == "no_file"
        assert len(room_lookups(vendor, "room-m")) == 1

        # The vendor produces the file after all: delivered as any file, nothing else follows.
        vendor.configure(no_file_rooms=[])
        vendor.record("room-m", started, stopped)
        wait_until(lambda: [f for f in vendor.files() if f["status"] == 2], 10.0, "the file")
        celery_app.send_task("discovery.poll")
        late = drain(customer, expect=1, timeout=15.0)
        late += drain(customer, timeout=3.0)
        assert len(late) == 1, worker.log()
        file_body, file_message = late[0]
        assert file_message.delivery_info["routing_key"] == "recording.ready"
        assert (file_body["room_id"], file_body["booking_id"]) == ("room-m", "booking-m")
        assert len(room_lookups(vendor, "room-m")) == 1


def test_a_missing_message_claimed_by_a_killed_worker_is_published_once(
    tuned: Any,
    env: dict[str, str],
    vendor: Any,
    customer: tuple[Connection, Queue],
    redis_client: redis.Redis,
    blackhole: str,
) -> None:
    vendor.configure(rate_limit=5, rate_period_s=1.0, no_file_rooms=["room-k"])
    keys = DiscoveryKeys(tuned.redis_key_prefix)
    record_ours(tuned, redis_client, "room-k", "booking-k")
    [session] = RecordingLog(redis_client, tuned.redis_key_prefix).for_room("room-k")
    mid = missing_message_id(session.session_id)
    # A publishes to a broker that never answers: it claims the message and hangs.
    a = WorkerProcess(
        queues=("query", "events"), concurrency=4, env={**env, "DOWNSTREAM_URL": blackhole}
    )
    try:
        a.start()
        wait_until(lambda: redis_client.hget(keys.outbox(mid), "state"), 20.0, "A's claim")
        a.kill()
        with running_worker(queues=("query", "events"), concurrency=4, env=env) as b:
            got = drain(customer, expect=1, timeout=20.0)
            got += drain(customer, timeout=2.0)
            assert len(got) == 1, b.log()
    finally:
        a.stop()
        a.log_path.unlink(missing_ok=True)
    body, message = got[0]
    assert body["message_id"] == mid == message.properties["message_id"]
    assert redis_client.hget(keys.outbox(mid), "state") == "sent"
    assert redis_client.hget(keys.missing(session.session_id), "state") == "missing"
    assert len(room_lookups(vendor, "room-k")) == 1


@pytest.fixture
def web_url(tuned: Any, celery_app: Celery) -> Iterator[str]:
    with serving(create_app(tuned, sender=functools.partial(celery_sender, app=celery_app))) as url:
        yield url


def test_callback_silence_warns_once_and_clears_once_through_a_worker(
    tuned: Any,
    env: dict[str, str],
    vendor: Any,
    celery_app: Celery,
    customer: tuple[Connection, Queue],
    redis_client: redis.Redis,
    web_url: str,
) -> None:
    vendor.configure(
        rate_limit=5, rate_period_s=1.0, upload_delay_s=0.1, transcode_delay_s=0.2,
        per_user_files=1, silent_rooms=["room-q"],
        callback_url=f"{web_url}{CALLBACK_PATH}?token={TOKEN}",
    )  # fmt: skip
    silence = CallbackSilence(
        redis_client, DiscoveryKeys(tuned.redis_key_prefix), silence_s=2.0, expected=True
    )
    with running_worker(queues=("query", "events"), concurrency=4, env=env) as worker:
        record_ours(tuned, redis_client, "room-q", "booking-q")
        wait_until(lambda: len([f for f in vendor.files() if f["status"] == 2]) == 2, 10.0)
        celery_app.send_task("discovery.poll")
        assert len(drain(customer, expect=2, timeout=15.0)) == 2
        wait_until(lambda: silence.status().warned, 15.0, "the silence warning")
        time.sleep(2.0)  # more watch-loop rounds: still one warning
        assert worker.log().count("no vendor callback for 2 s while 2 files") == 1
        assert "callback URL in the vendor console" in worker.log()

        # Another room's callback comes through the web process: the episode ends, once.
        record_ours(tuned, redis_client, "room-c", "booking-c")
        wait_until(lambda: not silence.status().warned, 20.0, "the silence cleared")
        wait_until(lambda: "callbacks arrive again" in worker.log(), 10.0)
        drain(customer, timeout=2.0)
        assert worker.log().count("callbacks arrive again") == 1
        assert worker.log().count("no vendor callback") == 1
    assert [e["verdict"] for e in vendor.journal("callback")].count("fault: silent room") == 2

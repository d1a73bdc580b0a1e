"""Discovery work a SIGKILLed worker held resumes within seconds of a live worker.

Worker A takes the work and is killed while it is in the middle of it (a poll whose vendor call
hangs; a message whose publish hangs on a downstream broker that never answers). While A lives,
its heartbeat keeps the work leased, so worker B, already running, does not double it; once A
is killed, B's resume loop takes it over within ``DISCOVERY_LEASE_S`` (default 3 s) and a loop
tick, instead of at the old 50 s poll-lock expiry, the next poll's sweep or the broker's
visibility timeout. Both run at the default lease.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Queue

from schedules.recording_log import RecordingLog
from tests.support.callbacks import callback_body
from tests.support.waiting import wait_until
from tests.support.workers import WorkerProcess
from worker.anyrtc.client import AnyRTCClient
from worker.anyrtc.fields import normalize_download_url
from worker.celery import app as celery_app
from worker.discovery.keys import DiscoveryKeys, file_key_id

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Resumed within one lease (3 s) plus a loop tick (1 s) and a task hand-over.
RESUME_WITHIN_S = 6.0


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()
        worker.log_path.unlink(missing_ok=True)


def _start(workers: list[WorkerProcess], env: dict[str, str]) -> WorkerProcess:
    worker = WorkerProcess(queues=("query", "events"), concurrency=4, env=env)
    workers.append(worker)
    return worker.start()


def test_a_poll_held_by_a_killed_worker_resumes_within_seconds(
    settings: Any, vendor: Any, redis_client: redis.Redis, workers: list[WorkerProcess]
) -> None:
    keys = DiscoveryKeys(settings.redis_key_prefix)
    # A's first time-list call hangs for a minute; its HTTP timeout is longer, so only the kill
    # ends it.
    vendor.configure(hang_s=60.0, inject_next=[{"endpoint": "getVodListByTime", "fault": "hang"}])
    a = _start(workers, {"ANYRTC_HTTP_TIMEOUT_S": "90"})
    celery_app.send_task("discovery.poll")
    wait_until(lambda: vendor.journal("getVodListByTime") or None, 15.0, "A's poll call")
    task_id = redis_client.get(keys.poll_running)
    assert task_id and redis_client.exists(keys.poll_lock)
    assert redis_client.hgetall(keys.poll_cursor)  # the cursor A would resume from

    b = _start(workers, {})
    # Both live, A's call still in progress past two leases: its heartbeat keeps the lock, and
    # B takes nothing over.
    time.sleep(2 * settings.discovery_lease_s)
    assert redis_client.get(keys.poll_running) == task_id
    assert 0 < redis_client.pttl(keys.poll_lock) <= settings.discovery_lease_s * 1000
    assert len(vendor.journal("getVodListByTime")) == 1
    assert not redis_client.exists(keys.poll_watermark)

    a.kill()
    killed = time.monotonic()
    wait_until(lambda: redis_client.get(keys.poll_watermark), 30.0, "the poll to finish")
    resumed_s = time.monotonic() - killed
    calls = vendor.journal("getVodListByTime")
    assert len(calls) == 2 and calls[1]["code"] == 200
    # The same window A was listing: the poll resumed from A's cursor, it did not start over.
    assert calls[1]["params"]["begTime"] == calls[0]["params"]["begTime"]
    assert resumed_s < RESUME_WITHIN_S, f"resumed {resumed_s:.1f}s after the kill"
    assert "resuming it" in b.log()
    assert not redis_client.exists(keys.poll_running)


def test_a_message_claimed_by_a_killed_worker_is_published_within_seconds(
    settings: Any,
    vendor: Any,
    redis_client: redis.Redis,
    workers: list[WorkerProcess],
    blackhole: str,
) -> None:
    customer = f"{settings.redis_key_prefix}-customer"
    bound = {"DOWNSTREAM_QUEUES": f"{customer}=recording.*"}
    exchange = Exchange(settings.downstream_exchange, "topic", durable=True)
    queue = Queue(customer, exchange, routing_key="recording.*", durable=True)
    keys = DiscoveryKeys(settings.redis_key_prefix)
    vendor.configure(upload_delay_s=0.0, transcode_delay_s=0.0)
    now = time.time()
    vendor.record("room-k", now - 20, now - 10)
    wait_until(lambda: [f for f in vendor.files() if f["status"] == 2], 10.0, "a final file")
    (file,) = vendor.files()
    fid = file_key_id(normalize_download_url(file["download_url"]))

    # A publishes to a broker that never answers: it claims the message and hangs.
    a = _start(workers, {**bound, "DOWNSTREAM_URL": blackhole})
    celery_app.send_task("discovery.callback", args=[callback_body(file)])
    wait_until(lambda: redis_client.hget(keys.outbox(fid), "state"), 15.0, "A's claim")

    with Connection(settings.downstream_broker_url) as conn:
        queue(conn.default_channel).declare()  # the customer binds before going live
        _start(workers, bound)
        time.sleep(2 * settings.discovery_lease_s)
        # A lives and is still publishing: its heartbeat keeps the claim, B does not double it.
        assert redis_client.hget(keys.outbox(fid), "state") == "pending"
        due_ms = redis_client.zscore(keys.outbox_pending, fid)
        assert due_ms is not None and due_ms > time.time() * 1000
        assert _drain(conn, queue, timeout=0.5) == []

        a.kill()
        killed = time.monotonic()
        got = _drain(conn, queue, timeout=30.0, expect=1)
        published_s = time.monotonic() - killed
        got += _drain(conn, queue, timeout=1.0)
    assert len(got) == 1, got
    body, properties = got[0]
    assert body["message_id"] == fid == properties["message_id"]
    assert body["room_id"] == "room-k" and body["source"] == "callback"
    assert published_s < RESUME_WITHIN_S, f"published {published_s:.1f}s after the kill"
    assert redis_client.hget(keys.outbox(fid), "state") == "sent"
    redis_client.delete(f"{settings.downstream_exchange}.audit")


#: The budget scaled to one second (the poll and look-ups follow it); everything else default.
SCALED = {"QUERY_RATE_PERIOD_S": "1", "QUERY_RATE_MARGIN_S": "0.02"}


def test_files_waiting_on_a_killed_workers_look_up_are_delivered_within_seconds(
    settings: Any, vendor: Any, redis_client: redis.Redis, workers: list[WorkerProcess]
) -> None:
    customer = f"{settings.redis_key_prefix}-customer"
    bound = {**SCALED, "DOWNSTREAM_QUEUES": f"{customer}=recording.*"}
    exchange = Exchange(settings.downstream_exchange, "topic", durable=True)
    queue = Queue(customer, exchange, routing_key="recording.*", durable=True)
    keys = DiscoveryKeys(settings.redis_key_prefix)
    vendor.configure(rate_limit=5, rate_period_s=1.0, upload_delay_s=0.1, transcode_delay_s=0.2)
    # Two rooms recorded in the same seconds: the time list cannot tell their files apart.
    client = AnyRTCClient.from_settings(settings)
    log = RecordingLog(redis_client, settings.redis_key_prefix)
    pair = ("twin-a", "twin-b")
    for room in pair:
        client.start_record(room)
    at = time.time()
    for room in pair:
        log.started(room, at, [f"booking-{room}"])
    time.sleep(1.2)
    for room in pair:
        client.stop_record(room)
    at = time.time()
    for room in pair:
        log.stopped(room, at)
    wait_until(lambda: len([f for f in vendor.files() if f["status"] == 2]) == 2, 10.0)

    # A's first room look-up hangs: A is killed in the middle of it.
    vendor.configure(hang_s=60.0, inject_next=[{"endpoint": "getVodInfoByRoomId", "fault": "hang"}])
    with Connection(settings.downstream_broker_url) as conn:
        queue(conn.default_channel).declare()
        a = _start(workers, {**bound, "ANYRTC_HTTP_TIMEOUT_S": "90"})
        celery_app.send_task("discovery.poll")
        wait_until(lambda: vendor.journal("getVodInfoByRoomId"), 15.0, "A's look-up")
        (held,) = [c["params"]["roomId"] for c in vendor.journal("getVodInfoByRoomId")]
        assert redis_client.zcard(keys.awaiting) == 2  # both files wait for look-ups
        _start(workers, bound)
        time.sleep(2 * settings.discovery_lease_s)
        # While A lives its room stays leased: B looks up only the other room.
        rooms = [c["params"]["roomId"] for c in vendor.journal("getVodInfoByRoomId")]
        assert rooms.count(held) == 1, rooms

        a.kill()
        killed = time.monotonic()
        got = _drain(conn, queue, timeout=30.0, expect=2)
        delivered_s = time.monotonic() - killed
        got += _drain(conn, queue, timeout=1.0)
    assert sorted(body["room_id"] for body, _ in got) == sorted(pair)
    assert all(body["booking_id"] == f"booking-{body['room_id']}" for body, _ in got)
    assert delivered_s < RESUME_WITHIN_S, f"delivered {delivered_s:.1f}s after the kill"
    redis_client.delete(f"{settings.downstream_exchange}.audit")


def _drain(
    conn: Connection, queue: Queue, *, timeout: float, expect: int | None = None
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    got: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def on_message(body: dict[str, Any], message: Any) -> None:
        got.append((body, dict(message.properties)))
        message.ack()

    with conn.Consumer(queue, callbacks=[on_message], accept=["json"]):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (expect is None or len(got) < expect):
            with contextlib.suppress(TimeoutError, socket.timeout):
                conn.drain_events(timeout=0.1)
    return got

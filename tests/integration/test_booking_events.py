"""Booking events downstream (``booking.v1``) through real Celery workers and the simulator:
each transition a booking system acts on reaches a queue bound to ``booking.#`` exactly once,
a permanent vendor refusal gives one ``booking.failed``, a redelivered action tells nothing
again, and a worker killed (SIGKILL) after taking a message but before publishing it loses
nothing: the next worker publishes it once, with the same id."""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Queue

from anyrtc_recorder_client import BookingClient
from config.settings import get_settings
from schedules import Lifecycle
from schedules.testing import FakeClock, InProcessRunner
from tests.support.waiting import wait_until
from tests.support.workers import running_worker
from worker.discovery.booking_outbox import BookingOutbox, BookingTeller
from worker.discovery.fanout import Publisher

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LIFECYCLE_ENV = {
    "ACTION_LEASE_S": "1",
    "RETRY_BACKOFF_BASE_S": "0.2",
    "RETRY_BACKOFF_MAX_S": "1",
    "STOP_RETRY_S": "20",
}


@pytest.fixture
def queue_name(redis_client: redis.Redis) -> Iterator[str]:
    settings = get_settings()
    name = f"{settings.redis_key_prefix}-bookings"
    yield name
    redis_client.delete(name, f"{settings.downstream_exchange}.audit")


@pytest.fixture
def bookings() -> Iterator[BookingClient]:
    settings = get_settings()
    client = BookingClient(
        settings.broker_url,
        key_prefix=settings.celery_broker_key_prefix,
        result_backend=settings.result_backend,
    )
    yield client
    client.close()


def bound(conn: Connection, name: str) -> Queue:
    """The booking system's queue, bound before anything is published."""
    exchange = Exchange(get_settings().downstream_exchange, "topic", durable=True)
    queue = Queue(name, exchange, "booking.#", durable=True)
    queue(conn.default_channel).declare()
    return queue


def drain(conn: Connection, queue: Queue, run: str, settle_s: float) -> list[dict[str, Any]]:
    """This run's messages (booking ids carry ``run``), until none came for ``settle_s``."""
    got: list[dict[str, Any]] = []

    def on_message(body: dict[str, Any], message: Any) -> None:
        if run in str(body.get("booking_id")):
            got.append(body)
        message.ack()

    with conn.Consumer(queue, callbacks=[on_message], accept=["json"]):
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < settle_s:
            before = len(got)
            with contextlib.suppress(TimeoutError, socket.timeout):
                conn.drain_events(timeout=0.2)
            if len(got) != before:
                quiet_since = time.monotonic()
    return got


def test_every_transition_is_told_once_through_the_workers(
    vendor: Any, bookings: BookingClient, queue_name: str, redis_client: redis.Redis
) -> None:
    from worker.anyrtc import results

    run = uuid.uuid4().hex[:8]
    env = {**LIFECYCLE_ENV, "DOWNSTREAM_QUEUES": f"{queue_name}=booking.#"}
    # The first start the vendor sees is refused for good: the earliest window's.
    vendor.configure(inject_next=[{"endpoint": "startrecord", "result": results.IP_NOT_ALLOWED}])
    with (
        Connection(get_settings().downstream_broker_url) as conn,
        running_worker(concurrency=8, env=env),
    ):
        queue = bound(conn, queue_name)
        t0 = time.time()
        user_data = {"booking_id": f"ok-{run}", "team": "x"}
        sent = [
            bookings.schedule(f"refused-{run}", f"rF-{run}", t0 + 1.0, t0 + 6),
            bookings.schedule(f"ok-{run}", f"rA-{run}", t0 + 2.5, t0 + 4.5, user_data=user_data),
            bookings.schedule(f"drop-{run}", f"rC-{run}", t0 + 20, t0 + 30),
            bookings.cancel(f"drop-{run}"),
        ]
        for result in sent:
            result.get(timeout=10)
        messages = drain(conn, queue, run, settle_s=7.0)
    told = Counter((m["booking_id"].split("-")[0], m["event"]) for m in messages)
    assert told == {
        ("refused", "booking.failed"): 1,
        ("ok", "booking.recording"): 1,
        ("ok", "booking.stopped"): 1,
        ("drop", "booking.cancelled"): 1,
    }
    assert len({m["message_id"] for m in messages}) == len(messages)
    by = {(m["booking_id"].split("-")[0], m["event"]): m for m in messages}
    failed = by[("refused", "booking.failed")]
    assert failed["code"] == results.IP_NOT_ALLOWED and failed["state"] == "failed"
    assert failed["tried"]["call"] == "start" and failed["tried"]["attempts"] >= 1
    assert failed["room_id"] == f"rF-{run}" and failed["started_at"] is None
    stopped = by[("ok", "booking.stopped")]
    recording = by[("ok", "booking.recording")]
    assert stopped["user_data"] == user_data and stopped["schema"] == "booking.v1"
    assert stopped["started_at"] == recording["started_at"] is not None
    assert stopped["stopped_at"] > stopped["started_at"]
    assert stopped["occurred_at"] > recording["occurred_at"]
    assert by[("drop", "booking.cancelled")]["started_at"] is None
    keys = Lifecycle(get_settings(), redis_client).keys
    assert redis_client.zcard(keys.outbox) == 0


def test_a_missed_window_and_a_redelivered_action_tell_once(
    redis_client: redis.Redis, queue_name: str
) -> None:
    settings = get_settings()
    clock = FakeClock(2_000_000_000.0)
    ctx = Lifecycle(settings, redis_client, clock=clock)
    run = uuid.uuid4().hex[:8]
    publisher = Publisher(
        settings.downstream_broker_url, settings.downstream_exchange, [], audit=False
    )
    teller = BookingTeller(BookingOutbox(redis_client, ctx.keys, clock=clock), publisher)
    with Connection(settings.downstream_broker_url) as conn:
        queue = bound(conn, queue_name)
        now = clock()
        ctx.store.apply_event(
            "schedule", f"late-{run}", now=now, room_id=f"r-{run}", start_at=now, end_at=now + 5
        )
        clock.advance(60)  # every worker was down for the whole window
        [action] = InProcessRunner(ctx).claim()
        assert ctx.store.apply_action(action, now=clock(), lease_s=1, token="a").verdict == "missed"
        # The same action again (a redelivery): stale, and nothing more to tell.
        assert ctx.store.apply_action(action, now=clock(), lease_s=1, token="b").verdict == "stale"
        assert teller.step() and teller.step() == []
        messages = drain(conn, queue, run, settle_s=1.0)
    publisher.close()
    [missed] = messages
    assert missed["event"] == "booking.missed" and missed["code"] == "missed"
    assert missed["tried"] == {"call": None, "attempts": 0, "last_code": None, "last_message": None}
    assert missed["start_at"] == "2033-05-18T03:33:20Z"


def test_a_worker_killed_between_taking_and_publishing_loses_nothing(
    vendor: Any, bookings: BookingClient, queue_name: str, redis_client: redis.Redis
) -> None:
    run = uuid.uuid4().hex[:8]
    keys = Lifecycle(get_settings(), redis_client).keys
    # The first worker's downstream broker does not answer: it takes the messages, then hangs
    # in its publish retries until killed.
    dead = {**LIFECYCLE_ENV, "DOWNSTREAM_URL": "redis://127.0.0.1:1/0"}
    env = {**LIFECYCLE_ENV, "DOWNSTREAM_QUEUES": f"{queue_name}=booking.#"}
    with Connection(get_settings().downstream_broker_url) as conn:
        queue = bound(conn, queue_name)
        with running_worker(concurrency=8, env=dead) as first:
            t0 = time.time()
            for n in range(3):
                bookings.schedule(f"k{n}-{run}", f"rk{n}-{run}", t0 + 20, t0 + 30).get(timeout=10)
                bookings.cancel(f"k{n}-{run}").get(timeout=10)

            def all_taken() -> bool:
                scores = redis_client.zrange(keys.outbox, 0, -1, withscores=True)
                mine = [s for m, s in scores if run in m]
                return len(mine) == 3 and all(s > time.time() * 1000 for s in mine)

            wait_until(all_taken, 10, "the first worker took all three")
            first.kill()
        # The lease runs out (moved forward rather than waited for).
        for member, _ in redis_client.zrange(keys.outbox, 0, -1, withscores=True):
            if run in member:
                redis_client.zadd(keys.outbox, {member: time.time() * 1000 - 1}, xx=True)
        with running_worker(concurrency=4, env=env):
            messages = drain(conn, queue, run, settle_s=3.0)
    assert Counter(m["booking_id"] for m in messages) == {f"k{n}-{run}": 1 for n in range(3)}
    assert {m["event"] for m in messages} == {"booking.cancelled"}
    assert not [m for m in redis_client.zrange(keys.outbox, 0, -1) if run in m]

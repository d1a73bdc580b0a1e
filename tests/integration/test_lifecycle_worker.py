"""The lifecycle through real Celery worker subprocesses (threads pool, dispatcher bootstep),
the real broker and the simulator over HTTP, in real time scaled down to seconds.

Assertions are on the simulator's journal: when each vendor call arrived and how many there were.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from anyrtc_recorder_client import BookingClient
from config.celery import LIFECYCLE_QUEUE
from config.settings import get_settings
from schedules import Lifecycle
from schedules.testing import InProcessRunner
from tests.support.brokers import Broker
from tests.support.histories import room_history
from tests.support.waiting import wait_until
from tests.support.workers import WorkerProcess, running_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKER_ENV = {
    "ACTION_LEASE_S": "1",
    "RETRY_BACKOFF_BASE_S": "0.2",
    "RETRY_BACKOFF_MAX_S": "1",
    "STOP_RETRY_S": "20",
}
# Not a latency claim (bench/herd.py measures lateness): only that a call came with its own
# due time rather than a lease, a retry or a window later. Never early is exact.
LIVENESS_S = 3.0


@pytest.fixture
def worker(redis_client: redis.Redis, vendor: Any) -> Iterator[WorkerProcess]:
    with running_worker(queues=(LIFECYCLE_QUEUE,), concurrency=8, env=WORKER_ENV) as process:
        yield process


@pytest.fixture
def broker_worker(
    broker: Broker, redis_client: redis.Redis, vendor: Any
) -> Iterator[WorkerProcess]:
    """The lifecycle worker on ``broker`` (each test using it runs on Redis and on RabbitMQ)."""
    env = {**WORKER_ENV, **broker.env}
    with running_worker(queues=(LIFECYCLE_QUEUE,), concurrency=8, env=env) as process:
        assert broker.serves(process.log()), process.log()
        yield process


def _booking_client(broker_url: str) -> BookingClient:
    """The helper exactly as a booking system builds it: broker URL and key prefix only."""
    settings = get_settings()
    return BookingClient(
        broker_url,
        key_prefix=settings.celery_broker_key_prefix,
        result_backend=settings.result_backend,
    )


@pytest.fixture
def bookings() -> Iterator[BookingClient]:
    client = _booking_client(get_settings().broker_url)
    yield client
    client.close()


@pytest.fixture
def broker_bookings(broker: Broker) -> Iterator[BookingClient]:
    client = _booking_client(broker.url)
    yield client
    client.close()


@pytest.fixture
def ctx(redis_client: redis.Redis) -> Lifecycle:
    return Lifecycle(get_settings(), redis_client)


def journal(sim: Any, endpoint: str, room: str) -> list[dict[str, Any]]:
    return [e for e in sim.journal(endpoint) if e["params"].get("ArRoomID") == room]


def assert_on_time(entry: dict[str, Any], due: float, before: float | None = None) -> None:
    """Arrived at or after ``due``, and before ``before`` (default: within LIVENESS_S)."""
    lateness = entry["time"] - due
    assert lateness >= 0, (entry["endpoint"], "early", lateness)
    limit = before if before is not None else due + LIVENESS_S
    assert entry["time"] < limit, (entry["endpoint"], "late", lateness)


def test_schedule_starts_at_start_at_and_stops_at_end_at(
    broker_worker: WorkerProcess, broker_bookings: BookingClient, vendor: Any, ctx: Lifecycle
) -> None:
    t0 = time.time()
    windows = {"r1": (2.0, 4.0), "r2": (2.5, 3.5), "r3": (3.0, 5.0)}
    for room, (start, end) in windows.items():
        result = broker_bookings.schedule(f"b-{room}", room, t0 + start, t0 + end)
        assert result.get(timeout=10)["verdict"] == "applied"
    wait_until(lambda: len(vendor.journal("stoprecord")) == 3, 10, "three stops")
    for room, (start, end) in windows.items():
        [started] = journal(vendor, "startrecord", room)
        [stopped] = journal(vendor, "stoprecord", room)
        assert_on_time(started, t0 + start, before=t0 + end)
        assert_on_time(stopped, t0 + end)

    def all_stopped() -> bool:
        # The vendor journals a stop on arrival; the worker settles it once the reply is back.
        views = [ctx.reader.booking(f"b-{room}") for room in windows]
        return all(v is not None and v.state == "stopped" for v in views)

    wait_until(all_stopped, 5, "every booking settled as stopped")


def test_reschedule_cancel_and_overlap_through_the_worker(
    worker: WorkerProcess, bookings: BookingClient, vendor: Any, ctx: Lifecycle
) -> None:
    t0 = time.time()
    sent = [
        bookings.schedule("move-early", "rA", t0 + 2, t0 + 4),
        bookings.schedule("move-early", "rA", t0 + 3, t0 + 5),  # before: later window
        bookings.schedule("extend", "rB", t0 + 1.5, t0 + 3),
        bookings.schedule("drop", "rC", t0 + 2, t0 + 5),
        bookings.cancel("drop"),  # before it starts
        bookings.schedule("cut", "rD", t0 + 1.5, t0 + 6),
        bookings.schedule("first", "rE", t0 + 1.5, t0 + 3.5),
        bookings.schedule("second", "rE", t0 + 2.5, t0 + 5),
    ]
    for result in sent:
        result.get(timeout=10)
    wait_until(lambda: len(journal(vendor, "startrecord", "rD")) == 1, 5, "rD started")
    wait_until(lambda: len(journal(vendor, "startrecord", "rB")) == 1, 5, "rB started")
    bookings.schedule("extend", "rB", t0 + 1.5, t0 + 5).get(timeout=10)  # during: later end
    bookings.cancel("cut").get(timeout=10)  # during: stops now
    cancelled_at = time.time()
    wait_until(lambda: len(vendor.journal("stoprecord")) == 4, 10, "four stops")
    time.sleep(0.5)

    [a_start] = journal(vendor, "startrecord", "rA")
    [a_stop] = journal(vendor, "stoprecord", "rA")
    assert_on_time(a_start, t0 + 3, before=t0 + 5)
    assert_on_time(a_stop, t0 + 5)
    [b_stop] = journal(vendor, "stoprecord", "rB")
    assert_on_time(b_stop, t0 + 5)
    assert journal(vendor, "startrecord", "rC") == []
    [d_stop] = journal(vendor, "stoprecord", "rD")
    assert_on_time(d_stop, cancelled_at)
    [e_start] = journal(vendor, "startrecord", "rE")
    [e_stop] = journal(vendor, "stoprecord", "rE")
    assert_on_time(e_start, t0 + 1.5, before=t0 + 3.5)
    assert_on_time(e_stop, t0 + 5)
    states = {b: ctx.reader.booking(b).state for b in ("drop", "cut", "first", "second")}  # type: ignore[union-attr]
    assert states == {
        "drop": "cancelled",
        "cut": "cancelled",
        "first": "stopped",
        "second": "stopped",
    }


def test_the_same_task_delivered_twice_makes_one_vendor_call(
    worker: WorkerProcess, vendor: Any, ctx: Lifecycle
) -> None:
    from worker import app

    vendor.configure(latency_s=0.3)
    now = time.time()
    ctx.store.apply_event("schedule", "dup", now=now, room_id="rX", start_at=now, end_at=now + 30)
    # Claim it here, before the worker's dispatcher does, then deliver its task twice at once.
    [action] = InProcessRunner(ctx).claim()
    for _ in range(2):
        app.send_task("recordings.perform", kwargs={"action": action}, task_id=action)
    wait_until(lambda: ctx.reader.booking("dup").state == "recording", 5, "recording")  # type: ignore[union-attr]
    time.sleep(1.5)  # a lease and more: nothing may be issued again
    assert len(journal(vendor, "startrecord", "rX")) == 1
    log = worker.log()
    assert log.count(f"recordings.perform[{action}] received") == 2


def test_the_same_batch_delivered_twice_makes_one_vendor_call_per_action(
    worker: WorkerProcess, vendor: Any, ctx: Lifecycle
) -> None:
    from worker import app

    vendor.configure(latency_s=0.3)
    now = time.time()
    rooms = [f"rBatch{n}" for n in range(3)]
    for room in rooms:
        ctx.store.apply_event(
            "schedule", f"dup-{room}", now=now, room_id=room, start_at=now, end_at=now + 30
        )
    # Claim them here, before the worker's dispatcher does, then deliver their batch twice.
    actions = InProcessRunner(ctx).claim()
    assert len(actions) == 3
    task_id = f"batch:{actions[0]}:{len(actions)}"
    for _ in range(2):
        app.send_task("recordings.perform_batch", kwargs={"actions": actions}, task_id=task_id)
    for room in rooms:
        wait_until(
            lambda room=room: ctx.reader.booking(f"dup-{room}").state == "recording",  # type: ignore[union-attr,misc]
            5,
            f"{room} recording",
        )
    time.sleep(1.5)  # a lease and more: nothing may be issued again
    for room in rooms:
        assert len(journal(vendor, "startrecord", room)) == 1
    assert worker.log().count(f"recordings.perform_batch[{task_id}] received") == 2


def test_a_batch_with_a_refused_start_fails_naming_it_after_the_others_ran(
    worker: WorkerProcess, vendor: Any, ctx: Lifecycle
) -> None:
    from worker import app
    from worker.anyrtc import results

    vendor.configure(inject_next=[{"endpoint": "startrecord", "result": results.IP_NOT_ALLOWED}])
    now = time.time()
    rooms = [f"rFail{n}" for n in range(3)]
    for room in rooms:
        ctx.store.apply_event(
            "schedule", f"bf-{room}", now=now, room_id=room, start_at=now, end_at=now + 30
        )
    actions = InProcessRunner(ctx).claim()
    assert len(actions) == 3
    result = app.send_task(
        "recordings.perform_batch",
        kwargs={"actions": actions},
        task_id=f"batch:{actions[0]}:3",
        ignore_result=False,
    )
    result.get(timeout=15, propagate=False)
    assert result.state == "FAILURE"
    states = {room: ctx.reader.booking(f"bf-{room}").state for room in rooms}  # type: ignore[union-attr]
    [failed] = [room for room, state in states.items() if state == "failed"]
    assert sorted(states.values()) == ["failed", "recording", "recording"]
    text = str(result.result)
    assert f"bf-{failed}" in text and results.IP_NOT_ALLOWED in text
    assert all(f"bf-{room}" not in text for room in rooms if room != failed)
    assert type(result.result).__name__ == "BookingFailed"


def test_out_of_order_updated_at_keeps_the_newer_event(
    worker: WorkerProcess, bookings: BookingClient, vendor: Any, ctx: Lifecycle
) -> None:
    t0 = time.time()
    newer, older = t0, t0 - 60
    # Sent back to back: the pool may apply them in any order; the result must not depend on it.
    results = [
        bookings.schedule("ooo-1", "rO1", t0 + 30, t0 + 40, updated_at=newer),
        bookings.schedule("ooo-1", "rO1", t0 + 3, t0 + 4, updated_at=older),
        bookings.schedule("ooo-2", "rO2", t0 + 3, t0 + 4, updated_at=older),
        bookings.schedule("ooo-2", "rO2", t0 + 30, t0 + 40, updated_at=newer),
        bookings.cancel("ooo-2", updated_at=older - 1),
    ]
    for result in results:
        result.get(timeout=10)
    time.sleep(max(0.0, t0 + 4.5 - time.time()))
    for booking, events in (("ooo-1", 2), ("ooo-2", 3)):
        view = ctx.reader.booking(booking)
        assert view is not None and view.state == "scheduled"
        assert view.start_at == pytest.approx(t0 + 30)
        assert view.updated_at == pytest.approx(newer)
        history = ctx.reader.history(booking)
        assert len(history) == events  # every event is accounted for, applied or not
        for entry in history:
            if entry["verdict"] == "stale":
                assert entry["updated_at"] < entry["applied_updated_at"]
    assert vendor.journal("startrecord") == []


def test_each_bad_input_fails_with_its_error_and_a_dead_letter(
    worker: WorkerProcess, vendor: Any, ctx: Lifecycle
) -> None:
    from worker import app

    now = time.time()
    good = {"booking_id": "bad", "room_id": "rZ", "start_at": now + 60, "end_at": now + 120}
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("recordings.schedule", {**good, "end_at": now + 30}, "end_at must be after start_at"),
        (
            "recordings.schedule",
            {**good, "start_at": now - 100, "end_at": now - 50},
            "end_at is not in the future",
        ),
        ("recordings.schedule", {**good, "end_at": now + 60 + 13 * 3600}, "MAX_BOOKING_S"),
        ("recordings.schedule", {**good, "name_rule": "{roomid}"}, "name_rule"),
        ("recordings.schedule", {**good, "user_data": [1, 2]}, "user_data"),
        ("recordings.schedule", {**good, "start_at": "2030-01-01T10:00:00"}, "no UTC offset"),
        ("recordings.schedule", {"booking_id": "bad", "room_id": "rZ"}, "missing a required"),
        ("recordings.schedule", {**good, "colour": "red"}, "unexpected keyword"),
        ("recordings.cancel", {"booking_id": ""}, "booking_id must not be empty"),
        ("recordings.start", {"room_id": ""}, "room_id must not be empty"),
        ("recordings.stop", {"room_id": 5}, "room_id must be a string, not int"),
    ]
    sent = [(app.send_task(name, kwargs=kwargs), fragment) for name, kwargs, fragment in cases]
    for result, fragment in sent:
        with pytest.raises(Exception) as info:
            result.get(timeout=10)
        assert type(info.value).__name__ == "InvalidBooking"
        assert fragment in str(info.value)
    letters = ctx.deadletters.list()
    assert len(letters) == len(cases)
    assert {letter["task"] for letter in letters} == {
        "recordings.schedule",
        "recordings.cancel",
        "recordings.start",
        "recordings.stop",
    }
    assert ctx.reader.booking("bad") is None
    assert vendor.journal() == []
    assert "Traceback" not in worker.log()
    assert os.environ["ANYRTC_VOD_TOKEN"] not in worker.log()
    assert os.environ["ANYRTC_VOD_TOKEN"] not in json.dumps(letters)


def test_vendor_errors_then_success_starts(
    worker: WorkerProcess, bookings: BookingClient, vendor: Any, ctx: Lifecycle
) -> None:
    vendor.configure(
        inject_next=[
            {"endpoint": "startrecord", "http_status": 503},
            {"endpoint": "startrecord", "fault": "error"},
            {"endpoint": "startrecord", "http_status": 503},
        ]
    )
    t0 = time.time()
    bookings.schedule("flaky", "rF", t0 + 1, t0 + 10).get(timeout=10)
    wait_until(lambda: ctx.reader.booking("flaky").state == "recording", 8, "recording")  # type: ignore[union-attr]
    verdicts = [e["verdict"] for e in journal(vendor, "startrecord", "rF")]
    assert verdicts == ["fault: http 503", "fault: http 500", "fault: http 503", "ok"]
    history = json.dumps(ctx.reader.history("flaky") + room_history(ctx, "rF"))
    assert os.environ["ANYRTC_VOD_TOKEN"] not in history + worker.log()


def test_a_worker_killed_mid_burst_loses_nothing_and_repeats_nothing_twice(
    broker: Broker, redis_client: redis.Redis, vendor: Any, ctx: Lifecycle
) -> None:
    rooms = [f"rk{i}" for i in range(30)]
    vendor.configure(latency_s=0.3)
    env = {**WORKER_ENV, **broker.env}
    first = WorkerProcess(queues=(LIFECYCLE_QUEUE,), concurrency=4, env=env).start()
    try:
        assert broker.serves(first.log()), first.log()
        t0 = time.time()
        for room in rooms:
            now = time.time()
            ctx.store.apply_event(
                "schedule",
                f"k-{room}",
                now=now,
                room_id=room,
                start_at=t0 + 1.5,
                end_at=t0 + 6,
                params={},
                request={},
            )
        wait_until(lambda: len(vendor.journal("startrecord")) >= 6, 6, "the burst to begin")
        first.kill()
        killed_at = time.time()
    finally:
        first.kill()
        first.log_path.unlink(missing_ok=True)
    started_before_kill = len(vendor.journal("startrecord"))
    assert started_before_kill < len(rooms), "kill came too late to test anything"

    with running_worker(queues=(LIFECYCLE_QUEUE,), concurrency=8, env=env):

        def all_stopped() -> bool:
            ok = [e for e in vendor.journal("stoprecord") if e["verdict"] == "ok"]
            return len(ok) == len(rooms)

        wait_until(all_stopped, 25, "every room stopped")
        time.sleep(1.5)

    starts = Counter(e["params"]["ArRoomID"] for e in vendor.journal("startrecord"))
    stops = Counter(e["params"]["ArRoomID"] for e in vendor.journal("stoprecord"))
    ok_starts = Counter(
        e["params"]["ArRoomID"] for e in vendor.journal("startrecord") if e["verdict"] == "ok"
    )
    assert set(ok_starts) == set(rooms) and max(ok_starts.values()) == 1
    assert max(starts.values()) <= 2, starts
    # Only calls in flight in the killed worker (its 4 action threads) can have been repeated:
    # a reply that came but was not yet settled (a herd settles after its calls) was noted in
    # the room and settled by the takeover without a second call (schedules/actions.call).
    assert sum(starts.values()) - len(rooms) <= 4, starts
    assert max(stops.values()) <= 2, stops
    states = Counter(ctx.reader.booking(f"k-{room}").state for room in rooms)  # type: ignore[union-attr]
    assert states == {"stopped": len(rooms)}
    assert killed_at < t0 + 6

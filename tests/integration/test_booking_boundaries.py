"""Every booking event, fed the hostile values of issue 13 through a real lifecycle worker:
each ends FAILURE with InvalidBooking and a dead letter listing the reason; nothing crashes and
no oversize key is left. Messages no task can take are dead-lettered too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from config.celery import LIFECYCLE_QUEUE
from config.settings import get_settings
from schedules import Lifecycle
from tests.support.run import TEST_PREFIX
from tests.support.waiting import wait_until
from tests.support.workers import WorkerProcess, running_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HUGE = "x" * 1_000_000
LONE = "\ud800"
SCHEDULE = {"booking_id": "bb-1", "room_id": "br-1", "start_at": 4102444800, "end_at": 4102448400}
HOSTILE: dict[str, list[tuple[dict[str, Any], str]]] = {
    "recordings.schedule": [
        ({**SCHEDULE, "booking_id": f"b{LONE}"}, "booking_id must be valid Unicode"),
        ({**SCHEDULE, "room_id": HUGE}, "room_id is 1000000 characters"),
        ({**SCHEDULE, "room_id": "   "}, "room_id must not be empty"),
        ({**SCHEDULE, "room_id": "r\x00"}, "control characters"),
        ({**SCHEDULE, "user_data": f"u{LONE}"}, "user_data must be valid Unicode"),
        ({**SCHEDULE, "user_data": {"k": LONE}}, "user_data must be valid Unicode"),
        ({**SCHEDULE, "user_data": HUGE}, "user_data is 1000000 characters"),
        ({**SCHEDULE, "path": f"a/{LONE}"}, "path must be at most"),
        ({**SCHEDULE, "path": HUGE}, "path must be at most"),
        ({**SCHEDULE, "room_type": "meet"}, "room_type 'meet' is not one of Meet"),
        ({**SCHEDULE, "name_rule": f"{{roomid}}{LONE}"}, "name_rule"),
    ],
    "recordings.cancel": [
        ({"booking_id": HUGE}, "booking_id is 1000000 characters"),
        ({"booking_id": LONE}, "booking_id must be valid Unicode"),
        ({"booking_id": "b\x00"}, "control characters"),
        ({"booking_id": " "}, "booking_id must not be empty"),
    ],
    "recordings.start": [
        ({"room_id": LONE}, "room_id must be valid Unicode"),
        ({"room_id": HUGE}, "room_id is 1000000 characters"),
        ({"room_id": "sr-1", "booking_id": f"b{LONE}"}, "booking_id must be valid Unicode"),
        ({"room_id": "sr-1", "user_data": {"k": LONE}}, "user_data must be valid Unicode"),
        ({"room_id": "sr-1", "path": LONE}, "path must be at most"),
        ({"room_id": "sr-1", "room_type": "meet"}, "room_type 'meet' is not one of Meet"),
    ],
    "recordings.stop": [
        ({"room_id": HUGE}, "room_id is 1000000 characters"),
        ({"room_id": f"r{LONE}"}, "room_id must be valid Unicode"),
        ({"room_id": "r\x00"}, "control characters"),
        ({"room_id": "tr-1", "booking_id": HUGE}, "booking_id is 1000000 characters"),
        ({"room_id": "tr-1", "room_type": "meet"}, "room_type 'meet' is not one of Meet"),
    ],
}


@pytest.fixture
def worker(redis_client: redis.Redis) -> Iterator[WorkerProcess]:
    # Per test, after redis_client has wiped the run's keys (the broker's bindings included).
    with running_worker(queues=(LIFECYCLE_QUEUE,), concurrency=4) as process:
        yield process


@pytest.fixture
def ctx(redis_client: redis.Redis) -> Lifecycle:
    return Lifecycle(get_settings(), redis_client)


@pytest.mark.parametrize("task", sorted(HOSTILE))
def test_each_hostile_event_is_dead_lettered_with_its_reason(
    task: str, worker: WorkerProcess, ctx: Lifecycle, redis_client: redis.Redis
) -> None:
    from worker.celery import app

    for kwargs, reason in HOSTILE[task]:
        before = ctx.deadletters.count()
        result = app.send_task(task, kwargs=kwargs)
        result.get(timeout=20, propagate=False)
        assert result.state == "FAILURE", (task, reason, result.result)
        assert type(result.result).__name__ == "InvalidBooking", result.result
        assert reason in str(result.result)
        assert ctx.deadletters.count() == before + 1, (task, reason)
        (entry,) = ctx.deadletters.list(1)
        assert entry["task"] == task and reason in entry["message"]
        assert len(str(entry["kwargs"])) < 20_000  # a 1 MB value is clipped, not kept
    assert "UnicodeEncodeError" not in worker.log()
    assert all(len(key) < 1000 for key in redis_client.scan_iter(match=f"*{TEST_PREFIX}*"))


def test_unknown_tasks_and_undecodable_messages_are_dead_lettered(
    worker: WorkerProcess, ctx: Lifecycle
) -> None:
    from worker.celery import app

    app.send_task("recordings.shedule", kwargs={"booking_id": "typo"}, queue=LIFECYCLE_QUEUE)
    with app.producer_or_acquire() as producer:
        producer.publish(
            b"\x80\x04not json at all",
            exchange=LIFECYCLE_QUEUE,
            routing_key=LIFECYCLE_QUEUE,
            content_type="application/json",
            content_encoding="binary",
            headers={"task": "recordings.cancel", "id": "undecodable-1"},
        )
    entries = wait_until(lambda: (e := ctx.deadletters.list(10)) and len(e) >= 2 and e, 20)
    by_error = {entry["error"]: entry for entry in entries}
    assert by_error["UnknownTask"]["task"] == "recordings.shedule"
    assert by_error["UnknownTask"]["kwargs"] == {"booking_id": "typo"}
    assert "recordings.schedule" in by_error["UnknownTask"]["message"]
    undecodable = by_error["UndecodableMessage"]
    assert (
        undecodable["task"] == "recordings.cancel" and "not json" in undecodable["kwargs"]["body"]
    )

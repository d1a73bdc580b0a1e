"""The booking-system helper: what it puts on the wire (the broker path is covered by
tests/integration/test_lifecycle_worker.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from anyrtc_recorder_client import BookingClient


class Recorder:
    """Stands in for the Celery app's ``send_task`` only: records what would be published."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], str]] = []

    def send_task(self, name: str, *, kwargs: dict[str, Any], queue: str) -> None:
        self.sent.append((name, kwargs, queue))


def client(now: float = 1_900_000_000.0) -> tuple[BookingClient, Recorder]:
    recorder = Recorder()
    return BookingClient(app=recorder, clock=lambda: now), recorder  # type: ignore[arg-type]


def test_schedule_sends_the_contract_with_updated_at_set() -> None:
    bookings, sent = client()
    start = datetime(2031, 1, 31, 14, tzinfo=timezone(timedelta(hours=1)))
    bookings.schedule("b1", "r1", start, 1_900_003_600, user_data={"k": "v"})
    [(name, kwargs, queue)] = sent.sent
    assert (name, queue) == ("recordings.schedule", "lifecycle")
    assert kwargs == {
        "booking_id": "b1",
        "room_id": "r1",
        "start_at": "2031-01-31T14:00:00+01:00",
        "end_at": 1_900_003_600,
        "user_data": {"k": "v"},
        "name_rule": None,
        "path": None,
        "room_type": None,
        "updated_at": 1_900_000_000.0,
    }


def test_an_explicit_updated_at_is_kept() -> None:
    bookings, sent = client()
    bookings.cancel("b1", updated_at=datetime(2030, 1, 1, tzinfo=UTC))
    assert sent.sent[0][1] == {"booking_id": "b1", "updated_at": "2030-01-01T00:00:00+00:00"}


def test_start_and_stop_have_the_task_signatures() -> None:
    bookings, sent = client()
    bookings.start("r1", booking_id="b1", room_type="Meet")
    bookings.stop("r1")
    assert [s[0] for s in sent.sent] == ["recordings.start", "recordings.stop"]
    assert set(sent.sent[0][1]) == {
        "room_id",
        "booking_id",
        "user_data",
        "name_rule",
        "path",
        "room_type",
    }
    assert sent.sent[1][1] == {"room_id": "r1", "booking_id": None, "room_type": None}


def test_naive_datetimes_are_refused_before_sending() -> None:
    bookings, sent = client()
    with pytest.raises(ValueError, match="timezone-aware"):
        bookings.schedule("b1", "r1", datetime(2031, 1, 1), datetime(2031, 1, 1, 1))
    assert sent.sent == []


def test_a_broker_url_or_an_app_is_required() -> None:
    with pytest.raises(ValueError):
        BookingClient()


def test_on_rabbitmq_events_are_published_with_confirms_and_no_redis_prefix() -> None:
    bookings = BookingClient("amqp://guest:guest@rabbit:5672/recorder", key_prefix="site-a:")
    assert bookings.app.conf.broker_transport_options == {"confirm_publish": True}
    [queue] = bookings.app.conf.task_queues
    assert queue.durable and queue.exchange.durable


def test_on_redis_the_key_prefix_is_the_only_broker_option() -> None:
    bookings = BookingClient("redis://127.0.0.1:6379/0", key_prefix="site-a:")
    assert bookings.app.conf.broker_transport_options == {"global_keyprefix": "site-a:"}

"""The helper a booking system uses to send lifecycle events (only this package and the broker
URL needed; no vendor credentials, no worker settings).

    from anyrtc_recorder_client import BookingClient

    bookings = BookingClient("redis://broker-host:6379/0")  # or "amqp://user:pw@rabbit/vhost"
    bookings.schedule("booking-42", "room-7", "2030-01-31T14:00:00+01:00",
                      "2030-01-31T15:00:00+01:00", user_data={"course": "math-101"})
    bookings.cancel("booking-42")

Each method has the signature of the task it sends, returns the Celery ``AsyncResult`` and
sets ``updated_at`` to the current time when the caller gives none, so two events about one
booking that overtake each other in the worker still end with the newer one applied. Give your
own ``updated_at`` (your booking's last-change time) when you have one: it also orders events
sent from different machines.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from celery import Celery
from celery.result import AsyncResult
from kombu import Exchange, Queue

from anyrtc_recorder_client.contract import CANCEL, LIFECYCLE_QUEUE, SCHEDULE, START, STOP, Event

__all__ = ["BookingClient"]

TIME_PARAMETERS = ("start_at", "end_at", "updated_at")


def _wire_time(value: Any) -> Any:
    """Datetimes as ISO 8601 (they must carry an offset); everything else as given (JSON)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("datetimes must be timezone-aware (the worker refuses naive times)")
        return value.isoformat()
    return value


def _broker_options(broker_url: str, prefixed: dict[str, str]) -> dict[str, Any]:
    """RabbitMQ: publisher confirms (a booking event counts as sent once the broker has it);
    Redis: the deployment's key prefix, if it opted into one."""
    if broker_url.split("://", 1)[0] in ("amqp", "amqps", "pyamqp"):
        return {"confirm_publish": True}
    return dict(prefixed)


class BookingClient:
    """Sends ``recordings.*`` tasks to the lifecycle queue of one deployment.

    ``key_prefix`` is the deployment's ``CELERY_BROKER_KEY_PREFIX`` when it opted into one (the
    default, None, is Celery's own unprefixed keys). Give ``result_backend`` (the deployment's
    result backend URL) to wait for outcomes with ``.get()``. ``app`` may be an existing Celery
    app configured for that broker instead.
    """

    def __init__(
        self,
        broker_url: str | None = None,
        *,
        key_prefix: str | None = None,
        result_backend: str | None = None,
        app: Celery | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if app is None:
            if not broker_url:
                raise ValueError("give broker_url (or an app)")
            app = Celery(
                "booking-client", broker=broker_url, backend=result_backend, set_as_current=False
            )
            exchange = Exchange(LIFECYCLE_QUEUE, durable=True)
            prefixed = {"global_keyprefix": key_prefix} if key_prefix else {}
            app.conf.update(
                result_backend_transport_options=prefixed,
                result_serializer="json",
                result_accept_content=["json"],
                broker_transport_options=_broker_options(broker_url, prefixed),
                broker_connection_retry_on_startup=True,
                task_serializer="json",
                accept_content=["json"],
                task_queues=(
                    Queue(LIFECYCLE_QUEUE, exchange, routing_key=LIFECYCLE_QUEUE, durable=True),
                ),
                task_routes={
                    "recordings.*": {"queue": LIFECYCLE_QUEUE, "routing_key": LIFECYCLE_QUEUE}
                },
                task_publish_retry=True,
            )
        self.app = app
        self.clock = clock

    def _send(self, event: Event, arguments: Mapping[str, Any]) -> AsyncResult:
        kwargs = event.kwargs(arguments)
        for name in TIME_PARAMETERS:
            if name in kwargs:
                kwargs[name] = _wire_time(kwargs[name])
        if "updated_at" in kwargs and kwargs["updated_at"] is None:
            kwargs["updated_at"] = self.clock()
        return self.app.send_task(event.task, kwargs=kwargs, queue=LIFECYCLE_QUEUE)

    # Each method sends its own locals(): the signature is checked against the contract by the
    # tests, so the parameter list is not written out a second time in the body.
    def schedule(
        self,
        booking_id: str,
        room_id: str,
        start_at: Any,
        end_at: Any,
        user_data: str | dict[str, Any] | None = None,
        name_rule: str | None = None,
        path: str | None = None,
        room_type: str | None = None,
        updated_at: Any = None,
    ) -> AsyncResult:
        """Book (or move) a recording window; times are ISO 8601 with offset, aware datetimes
        or epoch seconds."""
        return self._send(SCHEDULE, locals())

    def cancel(self, booking_id: str, updated_at: Any = None) -> AsyncResult:
        """Cancel a booking (a running recording stops unless another booking holds the room)."""
        return self._send(CANCEL, locals())

    def start(
        self,
        room_id: str,
        booking_id: str | None = None,
        user_data: str | dict[str, Any] | None = None,
        name_rule: str | None = None,
        path: str | None = None,
        room_type: str | None = None,
    ) -> AsyncResult:
        """Start recording a room now."""
        return self._send(START, locals())

    def stop(
        self, room_id: str, booking_id: str | None = None, room_type: str | None = None
    ) -> AsyncResult:
        """Release a hold on a room now (the manual one when ``booking_id`` is None)."""
        return self._send(STOP, locals())

    def close(self) -> None:
        self.app.close()

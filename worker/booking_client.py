"""The helper a booking system uses to send lifecycle events (only this package and the broker
URL needed; no vendor credentials, no worker settings).

    from worker.booking_client import BookingClient

    bookings = BookingClient("redis://broker-host:6379/0", key_prefix="anyrtc")
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
from collections.abc import Callable
from datetime import datetime
from typing import Any

from celery import Celery
from celery.result import AsyncResult
from kombu import Exchange, Queue

from config.celery import LIFECYCLE_QUEUE

__all__ = ["BookingClient"]


def _wire_time(value: Any) -> Any:
    """Datetimes as ISO 8601 (they must carry an offset); everything else as given (JSON)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("datetimes must be timezone-aware (the worker refuses naive times)")
        return value.isoformat()
    return value


class BookingClient:
    """Sends ``recordings.*`` tasks to the lifecycle queue of one deployment.

    ``key_prefix`` must be the deployment's ``REDIS_KEY_PREFIX`` (the broker keys live under
    ``<prefix>:broker:``). Give ``result_backend`` (the deployment's result backend URL) to
    wait for outcomes with ``.get()``. ``app`` may be an existing Celery app configured for that
    broker instead.
    """

    def __init__(
        self,
        broker_url: str | None = None,
        *,
        key_prefix: str = "anyrtc",
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
            exchange = Exchange(LIFECYCLE_QUEUE)
            app.conf.update(
                result_backend_transport_options={"global_keyprefix": f"{key_prefix}:results:"},
                result_serializer="json",
                result_accept_content=["json"],
                broker_transport_options={"global_keyprefix": f"{key_prefix}:broker:"},
                broker_connection_retry_on_startup=True,
                task_serializer="json",
                accept_content=["json"],
                task_queues=(Queue(LIFECYCLE_QUEUE, exchange, routing_key=LIFECYCLE_QUEUE),),
                task_routes={
                    "recordings.*": {"queue": LIFECYCLE_QUEUE, "routing_key": LIFECYCLE_QUEUE}
                },
                task_publish_retry=True,
            )
        self.app = app
        self.clock = clock

    def _send(self, name: str, kwargs: dict[str, Any]) -> AsyncResult:
        return self.app.send_task(name, kwargs=kwargs, queue=LIFECYCLE_QUEUE)

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
        return self._send(
            "recordings.schedule",
            {
                "booking_id": booking_id,
                "room_id": room_id,
                "start_at": _wire_time(start_at),
                "end_at": _wire_time(end_at),
                "user_data": user_data,
                "name_rule": name_rule,
                "path": path,
                "room_type": room_type,
                "updated_at": _wire_time(updated_at) if updated_at is not None else self.clock(),
            },
        )

    def cancel(self, booking_id: str, updated_at: Any = None) -> AsyncResult:
        """Cancel a booking (a running recording stops unless another booking holds the room)."""
        return self._send(
            "recordings.cancel",
            {
                "booking_id": booking_id,
                "updated_at": _wire_time(updated_at) if updated_at is not None else self.clock(),
            },
        )

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
        return self._send(
            "recordings.start",
            {
                "room_id": room_id,
                "booking_id": booking_id,
                "user_data": user_data,
                "name_rule": name_rule,
                "path": path,
                "room_type": room_type,
            },
        )

    def stop(
        self, room_id: str, booking_id: str | None = None, room_type: str | None = None
    ) -> AsyncResult:
        """Release a hold on a room now (the manual one when ``booking_id`` is None)."""
        return self._send(
            "recordings.stop",
            {"room_id": room_id, "booking_id": booking_id, "room_type": room_type},
        )

    def close(self) -> None:
        self.app.close()

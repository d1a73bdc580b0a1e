"""Lifecycle tasks (recordings.*): booking events and start/stop actions.

The booking events are the public contract for booking systems, defined once in
:mod:`anyrtc_recorder_client.contract` (names and keyword arguments are stable; JSON only). Each
task's signature is held to it by a test, and each body hands on its own ``locals()`` picked by
the contract, so the parameter list is written out once here, in the signature.

Internal, issued by the dispatcher for claimed actions: ``recordings.perform(action)`` for a
single one, ``recordings.perform_batch(actions)`` for a group due at the same second (run
concurrently in the worker; one message instead of one per action). Both start shortly before
their due time, prepare what they can and wait for it (:mod:`schedules.firing`).

Tasks are thin: the work is in :mod:`schedules`. None of them retries through Celery:
invalid input ends at once with InvalidBooking and a dead letter, and vendor retries are
rescheduled in Redis (the due set), not as Celery countdowns, so a task whose call will be
retried ends SUCCESS. An action that ends a booking ``failed`` ends its task FAILURE
(BookingFailed, with the vendor's code and message), so Flower's Failed filter and task-failed
events show every failed recording. A batch with such an action fails naming every failed
action and booking, after all its actions ran: one message stays one task (a separate report
task could itself be lost or delayed), and the batch's task id is what the dispatcher logged.
"""

from __future__ import annotations

import inspect
from typing import Any

from celery import Task, shared_task

from anyrtc_recorder_client.contract import CANCEL, SCHEDULE, START, STOP
from schedules import (
    cancel,
    get_lifecycle,
    perform_batch,
    perform_on_time,
    schedule,
    start_now,
    stop_now,
)
from schedules.events import reject
from worker.errors import BookingFailed, InvalidBooking
from worker.tasks.reporting import failed_bookings, raise_if_failed, record_action

__all__ = [
    "cancel_task",
    "perform_batch_task",
    "perform_task",
    "schedule_task",
    "start_task",
    "stop_task",
]


class LifecycleTask(Task):
    """Arguments that do not fit the contract are bad input like any other: dead-lettered
    with a clear error instead of a bare TypeError from the call."""

    typing = False
    # Any failure here is final for this message; retries are driven from Redis.
    max_retries = 0
    # Expected outcomes (bad input, a booking the vendor failed): reported as FAILURE, logged
    # without a traceback.
    throws = (InvalidBooking, BookingFailed)

    _signature: inspect.Signature | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._signature is None:
            self._signature = inspect.signature(self.run)
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            payload = {"args": list(args), **kwargs} if args else dict(kwargs)
            error = InvalidBooking(f"{self.name}: {exc}")
            raise reject(get_lifecycle(), self.name, payload, error, dead_letter=True) from None
        return super().__call__(*bound.args, **bound.kwargs)


@shared_task(name=SCHEDULE.task, base=LifecycleTask, ignore_result=False)
def schedule_task(
    booking_id: str,
    room_id: str,
    start_at: Any,
    end_at: Any,
    user_data: Any = None,
    name_rule: str | None = None,
    path: str | None = None,
    room_type: str | None = None,
    updated_at: Any = None,
) -> dict[str, Any]:
    """Create or reschedule a booked recording window (upsert by booking_id)."""
    return schedule(get_lifecycle(), **SCHEDULE.kwargs(locals()))


@shared_task(name=CANCEL.task, base=LifecycleTask)
def cancel_task(booking_id: str, updated_at: Any = None) -> dict[str, Any]:
    """Drop a pending window; stop a running one unless another booking holds the room."""
    return cancel(get_lifecycle(), **CANCEL.kwargs(locals()))


@shared_task(name=START.task, base=LifecycleTask)
def start_task(
    room_id: str,
    booking_id: str | None = None,
    user_data: Any = None,
    name_rule: str | None = None,
    path: str | None = None,
    room_type: str | None = None,
) -> dict[str, Any]:
    """Start recording a room now (joins a running recording without a vendor call)."""
    return start_now(get_lifecycle(), **START.kwargs(locals()))


@shared_task(name=STOP.task, base=LifecycleTask)
def stop_task(
    room_id: str, booking_id: str | None = None, room_type: str | None = None
) -> dict[str, Any]:
    """Release a hold on a room now; the vendor stop happens when no booking holds it."""
    return stop_now(get_lifecycle(), **STOP.kwargs(locals()))


@shared_task(name="recordings.perform", base=LifecycleTask, ignore_result=True, track_started=False)
def perform_task(action: str) -> dict[str, Any]:
    """Carry out one claimed action (issued by the dispatcher; safe to deliver twice)."""
    ctx = get_lifecycle()
    started = ctx.clock()
    summary = perform_on_time(ctx, action)
    record_action(ctx, action, summary, started)
    raise_if_failed(action, failed_bookings(ctx, summary))
    return summary


@shared_task(
    name="recordings.perform_batch", base=LifecycleTask, ignore_result=True, track_started=False
)
def perform_batch_task(actions: list[str]) -> dict[str, Any]:
    """Carry out a group of claimed actions concurrently, each as ``recordings.perform`` would
    (issued by the dispatcher; safe to deliver twice; one failing action spares the others)."""
    if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
        raise InvalidBooking("recordings.perform_batch: actions must be a list of action ids")
    ctx = get_lifecycle()
    started = ctx.clock()
    result = perform_batch(ctx, actions)
    summaries: dict[str, dict[str, Any]] = result.pop("summaries", {})
    failing: dict[str, list[Any]] = {}
    for action_id, summary in summaries.items():
        record_action(ctx, action_id, summary, started)
        views = failed_bookings(ctx, summary)
        if views:
            failing[action_id] = views
    if failing:
        raise_if_failed(", ".join(failing), [v for views in failing.values() for v in views])
    return result

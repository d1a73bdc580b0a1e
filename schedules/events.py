"""Booking events: schedule, cancel, start now, stop now.

Each validates its input first. Invalid input is never retried: the event is dead-lettered
(with every problem listed) and InvalidBooking is raised for the caller (the task ends FAILURE
with that message). A valid event is applied by one Lua script (``apply_event.lua``).
"""

from __future__ import annotations

import logging
from typing import Any

from anyrtc_recorder_client.contract import CANCEL, SCHEDULE, START, STOP, Event
from schedules.context import Lifecycle
from schedules.letter_values import clipped
from schedules.state import FINAL_STATES
from schedules.windows import (
    id_problem,
    invalid_booking,
    parse_time,
    room_type_problem,
    validate_booking,
)
from worker.errors import InvalidBooking
from worker.logs import secrets_of

__all__ = [
    "MANUAL_PREFIX",
    "cancel",
    "manual_booking_id",
    "reject",
    "schedule",
    "start_now",
    "stop_now",
]

log = logging.getLogger(__name__)

MANUAL_PREFIX = "manual:"


def manual_booking_id(room_id: str) -> str:
    """The booking that holds a room started with ``recordings.start`` without a booking id."""
    return MANUAL_PREFIX + room_id


def reject(
    ctx: Lifecycle, task: str, kwargs: dict[str, Any], error: InvalidBooking, *, dead_letter: bool
) -> InvalidBooking:
    if dead_letter:
        booking_id = kwargs.get("booking_id")
        room_id = kwargs.get("room_id")
        entry = ctx.deadletters.add(
            task=task,
            kwargs=clipped(kwargs, secrets=secrets_of(ctx.settings)),
            error="InvalidBooking",
            message=str(error),
            now=ctx.clock(),
            booking_id=booking_id if id_problem("", booking_id) is None else None,
            room_id=room_id if id_problem("", room_id) is None else None,
        )
        log.warning("%s rejected (dead letter %s): %s", task, entry, error)
    return error


def schedule(
    ctx: Lifecycle,
    *,
    booking_id: Any,
    room_id: Any,
    start_at: Any,
    end_at: Any,
    user_data: Any = None,
    name_rule: Any = None,
    path: Any = None,
    room_type: Any = None,
    updated_at: Any = None,
    source: str = SCHEDULE.task,
    dead_letter: bool = True,
) -> dict[str, Any]:
    """Create or reschedule booking ``booking_id`` (an upsert)."""
    # The event as the contract names it (what dead letters and histories keep), taken from the
    # parameters so the list is not written out again; tests hold the signature to the contract.
    kwargs = SCHEDULE.kwargs(locals())
    return _apply_window(
        ctx,
        SCHEDULE,
        "schedule",
        kwargs,
        kwargs,
        now=ctx.clock(),
        lead_s=ctx.settings.window_lead_s,
        source=source,
        dead_letter=dead_letter,
    )


def _apply_window(
    ctx: Lifecycle,
    event: Event,
    mode: str,
    candidate: dict[str, Any],
    kwargs: dict[str, Any],
    *,
    now: float,
    lead_s: float,
    source: str,
    dead_letter: bool,
) -> dict[str, Any]:
    """Validate ``candidate`` (the window asked for) and apply it as ``mode``; ``kwargs`` is the
    event as received, kept for dead letters and replays."""
    try:
        request = validate_booking(
            candidate,
            now=now,
            max_booking_s=ctx.settings.max_booking_s,
            room_types=ctx.settings.room_types,
        )
    except InvalidBooking as exc:
        raise reject(ctx, event.task, kwargs, exc, dead_letter=dead_letter) from None
    result = ctx.store.apply_event(
        mode,
        request.booking_id,
        now=now,
        updated_at=request.updated_at,
        room_id=request.room_id,
        start_at=request.start_at,
        end_at=request.end_at,
        lead_s=lead_s,
        tail_s=ctx.settings.window_tail_s,
        params=request.params(),
        request={"task": event.task, "kwargs": kwargs},
        source=source,
    )
    return {"booking_id": request.booking_id, **result.as_dict()}


def _booking_id_and_time(
    ctx: Lifecycle, task: str, kwargs: dict[str, Any], *, dead_letter: bool
) -> tuple[str, float | None]:
    booking_id = kwargs.get("booking_id")
    problem = id_problem("booking_id", booking_id)
    problems = [problem] if problem else []
    updated_at = None
    if kwargs.get("updated_at") is not None:
        try:
            updated_at = parse_time(kwargs["updated_at"], "updated_at")
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise reject(ctx, task, kwargs, invalid_booking(problems), dead_letter=dead_letter)
    return str(booking_id), updated_at


def cancel(
    ctx: Lifecycle,
    *,
    booking_id: Any,
    updated_at: Any = None,
    source: str = CANCEL.task,
    dead_letter: bool = True,
) -> dict[str, Any]:
    """Drop a pending window, or release a held room now (the room stops if no one else holds
    it). A cancel for an unknown booking leaves a tombstone so an older schedule arriving later
    still loses."""
    kwargs = CANCEL.kwargs(locals())
    bid, when = _booking_id_and_time(ctx, CANCEL.task, kwargs, dead_letter=dead_letter)
    result = ctx.store.apply_event("cancel", bid, now=ctx.clock(), updated_at=when, source=source)
    return {"booking_id": bid, **result.as_dict()}


def _hold_problems(room_id: Any, booking_id: Any) -> list[str]:
    """The room and (optional) booking of a start or stop, checked like a schedule's."""
    problems = [id_problem("room_id", room_id)]
    if booking_id is not None:
        problems.append(id_problem("booking_id", booking_id))
    return [p for p in problems if p]


def start_now(
    ctx: Lifecycle,
    *,
    room_id: Any,
    booking_id: Any = None,
    user_data: Any = None,
    name_rule: Any = None,
    path: Any = None,
    room_type: Any = None,
    source: str = START.task,
    dead_letter: bool = True,
) -> dict[str, Any]:
    """Start recording ``room_id`` now, held by ``booking_id`` (default ``manual:<room_id>``).

    A known booking keeps its end if that is still ahead; otherwise the hold lasts at most
    ``MAX_BOOKING_S``, so a forgotten manual recording cannot run forever. A room that already
    records is joined without a vendor call.
    """
    kwargs = START.kwargs(locals())
    problems = _hold_problems(room_id, booking_id)
    if problems:
        raise reject(ctx, START.task, kwargs, invalid_booking(problems), dead_letter=dead_letter)
    bid = booking_id if booking_id is not None else manual_booking_id(room_id)
    now = ctx.clock()
    end = now + ctx.settings.max_booking_s
    existing = ctx.reader.booking(bid) if isinstance(bid, str) else None
    if (
        existing is not None
        and existing.state not in FINAL_STATES
        and existing.room_id == room_id
        and existing.end_at is not None
        and existing.end_at > now
    ):
        end = existing.end_at
    candidate = {**kwargs, "booking_id": bid, "start_at": now, "end_at": end}
    return _apply_window(
        ctx,
        START,
        "start",
        candidate,
        kwargs,
        now=now,
        lead_s=0.0,
        source=source,
        dead_letter=dead_letter,
    )


def stop_now(
    ctx: Lifecycle,
    *,
    room_id: Any,
    booking_id: Any = None,
    room_type: Any = None,
    source: str = STOP.task,
    dead_letter: bool = True,
) -> dict[str, Any]:
    """Release ``booking_id``'s hold on ``room_id`` now (default: the manual hold).

    The vendor stop happens only if no other booking still holds the room, and never for a room
    that is not recording. ``room_type`` is accepted for symmetry; the stop always uses the type
    the recording was started with.
    """
    kwargs = STOP.kwargs(locals())
    problems = _hold_problems(room_id, booking_id)
    type_problem = room_type_problem(room_type, ctx.settings.room_types)
    if type_problem:
        problems.append(type_problem)
    bid = booking_id if booking_id is not None else manual_booking_id(str(room_id))
    existing = ctx.reader.booking(bid) if not problems else None
    if existing is not None and existing.room_id and existing.room_id != room_id:
        problems.append(f"booking {bid!r} is for room {existing.room_id!r}, not {room_id!r}")
    if problems:
        raise reject(ctx, STOP.task, kwargs, invalid_booking(problems), dead_letter=dead_letter)
    if existing is None:
        return {
            "booking_id": bid,
            "verdict": "ignored",
            "state": "",
            "next_action": "",
            "next_at": None,
            "detail": f"nothing to stop: no booking {bid!r} holds room {room_id!r}",
        }
    result = ctx.store.apply_event("stop", bid, now=ctx.clock(), source=source)
    return {"booking_id": bid, **result.as_dict()}

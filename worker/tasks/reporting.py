"""What a performed action tells the operator: metrics from its summary, and the bookings it
ended ``failed``, which its task then reports as a Celery FAILURE.

Read from the summaries :func:`schedules.perform` returns, so the lifecycle functions stay free
of Celery and metrics: every settled operation names its kind, outcome, code, attempt and the
bookings it confirmed or failed (``finish_call.lua``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from schedules.context import Lifecycle
from schedules.keys import parse_action
from schedules.state import BookingView
from worker.anyrtc.client import START, STOP
from worker.anyrtc.results import vendor_error_text
from worker.errors import BookingFailed
from worker.metrics.recorder import Metrics

__all__ = ["failed_bookings", "failure_text", "raise_if_failed", "record_action"]


def _operations(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [op for op in summary.get("operations") or [] if isinstance(op, dict)]


def record_action(ctx: Lifecycle, action_id: str, summary: dict[str, Any], started: float) -> None:
    """Count the vendor calls the action made; for a booking's first attempt, its lateness
    (the call was sent at its operation's ``sent_at``, else at ``started`` or, delivered early,
    at the due time it waited for)."""
    metrics = Metrics(ctx.redis, ctx.settings.redis_key_prefix)
    operations = _operations(summary)
    for op in operations:
        if op.get("outcome") != "abandon":  # given up without a call
            endpoint = START if op.get("kind") == "start" else STOP
            metrics.vendor_call(endpoint, str(op.get("outcome")), str(op.get("code") or ""))
    ref = parse_action(action_id)
    if ref.is_room_op or not operations or operations[0].get("attempt") != 1:
        return
    view = ctx.reader.booking(ref.subject)
    due = None if view is None else (view.start_due if ref.kind == "start" else view.stop_due)
    if due is not None:
        # The send time when the summary has it: a task prepared ahead started before its due.
        sent = operations[0].get("sent_at")
        sent_at = float(sent) if isinstance(sent, int | float) else started
        metrics.lateness(max(sent_at, due) - due)


def failed_bookings(ctx: Lifecycle, summary: dict[str, Any]) -> list[BookingView]:
    """The bookings this action's operations ended ``failed`` (and still are)."""
    ids: set[str] = set()
    for op in _operations(summary):
        if op.get("verdict") == "failed":
            ids.update(str(b) for b in op.get("bookings") or [])
    views = [ctx.reader.booking(b) for b in sorted(ids)]
    return [v for v in views if v is not None and v.state == "failed"]


def failure_text(views: Iterable[BookingView]) -> str:
    """One clause per failed booking: the vendor's code and message (once, when the reply's
    code is its message), else the reason it failed."""
    return "; ".join(
        f"booking {v.booking_id} (room {v.room_id}) failed: "
        + (f"vendor answered {vendor_error_text(v.code, v.message)}" if v.code else v.reason)
        for v in views
    )


def raise_if_failed(action_ids: str, views: list[BookingView]) -> None:
    """Raise :class:`BookingFailed` naming the action(s) and bookings, if any failed."""
    if views:
        raise BookingFailed(f"{action_ids}: {failure_text(views)}")

"""Replaying a dead letter: the stored event, optionally corrected, applied again."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from schedules import events
from schedules.context import Lifecycle
from worker.errors import InvalidBooking

__all__ = ["REPLAYABLE", "replay"]

REPLAYABLE: dict[str, Callable[..., dict[str, Any]]] = {
    "recordings.schedule": events.schedule,
    "recordings.cancel": events.cancel,
    "recordings.start": events.start_now,
    "recordings.stop": events.stop_now,
}


def replay(
    ctx: Lifecycle, entry_id: str, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Apply dead letter ``entry_id`` again (with ``overrides`` merged into its kwargs).

    The outcome is noted on the entry. A replay that is still invalid raises InvalidBooking
    and adds no new dead letter (the operator sees the error at once).
    """
    entry = ctx.deadletters.get(entry_id)
    if entry is None:
        raise KeyError(f"no dead letter {entry_id!r}")
    task = entry.get("task") or "recordings.schedule"
    function = REPLAYABLE.get(task)
    if function is None:
        raise ValueError(f"dead letter {entry_id} holds task {task!r}, which cannot be replayed")
    kwargs = {**(entry.get("kwargs") or {}), **(overrides or {})}
    # A replay is a new decision by the operator: it must not lose to the original timestamp.
    if "updated_at" in kwargs and "updated_at" not in (overrides or {}):
        kwargs["updated_at"] = None
    try:
        result = function(
            ctx, **kwargs, source=f"replay of dead letter {entry_id}", dead_letter=False
        )
    except InvalidBooking as exc:
        ctx.deadletters.mark_replayed(entry_id, now=ctx.clock(), outcome={"error": str(exc)})
        raise
    ctx.deadletters.mark_replayed(entry_id, now=ctx.clock(), outcome=result)
    return {"dead_letter": entry_id, "task": task, **result}

"""The task contract between booking systems and the recorder: one definition per booking event.

The worker's tasks, the operator CLI, the booking client and README's contract table are all
checked against (or built from) these definitions, so a parameter is added or renamed here first.
Messages are JSON only; every event goes to :data:`LIFECYCLE_QUEUE`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CANCEL",
    "EVENTS",
    "LIFECYCLE_QUEUE",
    "OPTIONAL_DEFAULT",
    "SCHEDULE",
    "START",
    "STOP",
    "Event",
]

LIFECYCLE_QUEUE = "lifecycle"

# Every optional parameter defaults to this: "not given" must mean the same on every path.
OPTIONAL_DEFAULT = None


@dataclass(frozen=True)
class Event:
    """One booking event: a Celery task name and its keyword arguments, in order."""

    task: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    description: str

    @property
    def parameters(self) -> tuple[str, ...]:
        """Every parameter in order, required ones first (also the positional order)."""
        return self.required + self.optional

    def kwargs(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """This event's keyword arguments taken from ``values`` (a namespace's ``vars()`` or a
        function's ``locals()``), in contract order; other keys are ignored and a missing
        optional one takes its default."""
        missing = [name for name in self.required if name not in values]
        if missing:
            raise TypeError(f"{self.task}: missing {', '.join(missing)}")
        return {name: values.get(name, OPTIONAL_DEFAULT) for name in self.parameters}


SCHEDULE = Event(
    task="recordings.schedule",
    required=("booking_id", "room_id", "start_at", "end_at"),
    optional=("user_data", "name_rule", "path", "room_type", "updated_at"),
    description="book or move a window",
)
CANCEL = Event(
    task="recordings.cancel",
    required=("booking_id",),
    optional=("updated_at",),
    description="cancel a booking",
)
START = Event(
    task="recordings.start",
    required=("room_id",),
    optional=("booking_id", "user_data", "name_rule", "path", "room_type"),
    description="start recording a room now",
)
STOP = Event(
    task="recordings.stop",
    required=("room_id",),
    optional=("booking_id", "room_type"),
    description="release a room's hold now",
)

EVENTS: tuple[Event, ...] = (SCHEDULE, CANCEL, START, STOP)

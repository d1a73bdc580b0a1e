"""The recording lifecycle as plain functions (the Celery tasks in ``worker.tasks.lifecycle``
only call these): booking events, due actions with their guarded vendor calls, replays."""

from worker.lifecycle.actions import perform, perform_batch
from worker.lifecycle.context import Lifecycle, get_lifecycle
from worker.lifecycle.events import cancel, schedule, start_now, stop_now
from worker.lifecycle.replay import replay

__all__ = [
    "Lifecycle",
    "cancel",
    "get_lifecycle",
    "perform",
    "perform_batch",
    "replay",
    "schedule",
    "start_now",
    "stop_now",
]

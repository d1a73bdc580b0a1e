"""The recording lifecycle, whole: booking events and their validation, the store and its keys,
the state machine, the dispatcher and its worker bootstep, vendor actions, the recording log,
dead letters and the Lua scripts behind them.

The Celery tasks in ``worker.tasks.lifecycle`` only call the plain functions exported here.
They are loaded on first access, so importing ``schedules.keys`` (as discovery and the console
do) does not build the vendor client or read settings. ``schedules.replay.replay`` replays a
dead letter (not exported here: the name is its module's).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "Lifecycle",
    "cancel",
    "get_lifecycle",
    "perform",
    "perform_batch",
    "perform_on_time",
    "schedule",
    "start_now",
    "stop_now",
]

_EXPORTS = {
    "perform": "schedules.actions",
    "perform_batch": "schedules.firing",
    "perform_on_time": "schedules.firing",
    "Lifecycle": "schedules.context",
    "get_lifecycle": "schedules.context",
    "cancel": "schedules.events",
    "schedule": "schedules.events",
    "start_now": "schedules.events",
    "stop_now": "schedules.events",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'schedules' has no attribute {name!r}")
    return getattr(import_module(module), name)

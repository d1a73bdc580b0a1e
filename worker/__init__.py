"""The recording worker.

``app`` (the Celery app) is loaded on first access, so importing ``worker.anyrtc`` (for instance
to run the simulator) needs no vendor settings, while ``celery -A worker`` still fails fast at
start-up when a setting is missing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["app", "celery"]


def __getattr__(name: str) -> Any:
    if name in ("app", "celery"):
        from worker.celery import app

        return app
    raise AttributeError(f"module 'worker' has no attribute {name!r}")

"""The Celery app, wiring only: `celery -A worker worker` and `celery -A worker beat` find it."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import setup_logging

from config.celery import celery_config
from config.settings import get_settings
from schedules.dispatch_step import DispatchStep
from worker.logs import configure_logging, secrets_of

app = Celery("worker")
app.config_from_object(celery_config(get_settings()))
# The lifecycle dispatcher runs inside every worker that consumes the lifecycle queue.
app.steps["worker"].add(DispatchStep)


@setup_logging.connect
def _configure_logging(**_: Any) -> None:
    # Connecting this signal keeps Celery from installing its own handlers: ours scrub secrets.
    settings = get_settings()
    configure_logging(
        log_format=settings.log_format, level=settings.log_level, secrets=secrets_of(settings)
    )


__all__ = ["app"]

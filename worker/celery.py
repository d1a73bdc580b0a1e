"""The Celery app, wiring only: `celery -A worker worker` and `celery -A worker beat` find it."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import celeryd_init, setup_logging

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


@celeryd_init.connect
def _json_from_the_start(instance: Any = None, **_: Any) -> None:
    # With LOG_FORMAT=json every line must be JSON: the start-up banner is printed, not logged,
    # so it is turned off; and the handlers go in now, before the worker's first warnings (its
    # privilege check runs right after this signal, before setup_logging).
    if instance is not None and get_settings().log_format == "json":
        instance.quiet = True
        _configure_logging()


__all__ = ["app"]

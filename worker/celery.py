"""The Celery app, wiring only: `celery -A worker worker` and `celery -A worker beat` find it."""

from __future__ import annotations

from celery import Celery

from config.celery import celery_config
from config.settings import get_settings

app = Celery("worker")
app.config_from_object(celery_config(get_settings()))

__all__ = ["app"]

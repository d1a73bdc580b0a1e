"""Celery configuration as plain data, built from Settings.

Queues (explicit; nothing routes in code):
- ``lifecycle``: booking events and start/stop actions; a start must never wait behind a poll.
- ``query``: calls to the vendor's budgeted query endpoints (time poll, room look-ups).
- ``events``: callback intake and downstream publishing; never waits on the vendor.
- ``celery``: Celery's default queue, consumed by the lifecycle worker beside ``lifecycle``, so a
  booking system that sends ``recordings.*`` by name with no queue option is still served.

Broker and result keys carry no prefix unless ``CELERY_BROKER_KEY_PREFIX`` is set: a plain
``Celery(broker=url)`` client must find the queues and read the results as they are.

The broker is Redis (the default) or RabbitMQ (``CELERY_BROKER_URL=amqp://...``): every queue
and its exchange are durable on both, Redis-only options go to Redis connections only, and AMQP
connections publish with confirms. State and leases stay in Redis either way.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from kombu import Exchange, Queue

from anyrtc_recorder_client.contract import LIFECYCLE_QUEUE
from config.settings import Settings

__all__ = [
    "DEFAULT_QUEUE",
    "EVENTS_QUEUE",
    "LIFECYCLE_QUEUE",
    "QUERY_QUEUE",
    "TASK_MODULES",
    "celery_config",
    "is_amqp_url",
    "is_redis_url",
    "transport_options",
]

QUERY_QUEUE = "query"
EVENTS_QUEUE = "events"
#: Celery's own default (``task_default_queue``), where a client without routes sends.
DEFAULT_QUEUE = "celery"

TASK_MODULES = ("worker.tasks.lifecycle", "worker.tasks.discovery", "worker.tasks.misfits")

# Redelivery after a lost worker comes from our own leases; the broker's sweep is a backstop.
# It must stay above the task hard time limit, which stays above the HTTP timeouts.
VISIBILITY_TIMEOUT_S = 300
TASK_TIME_LIMIT_S = 120


def is_redis_url(url: str) -> bool:
    """Whether ``url`` names a Redis server (kombu's and Celery's ``redis``/``rediss`` schemes)."""
    return urlsplit(url).scheme in ("redis", "rediss", "redis+socket", "sentinel")


def is_amqp_url(url: str) -> bool:
    """Whether ``url`` names an AMQP broker such as RabbitMQ (kombu's pyamqp transport)."""
    return urlsplit(url).scheme in ("amqp", "amqps", "pyamqp")


def transport_options(url: str, settings: Settings) -> dict[str, Any]:
    """The kombu transport options for a connection to ``url`` (broker or result backend).

    Redis gets the visibility timeout and the opt-in key prefix (both mean nothing elsewhere);
    AMQP gets publisher confirms, so a task the dispatcher or the web process sends counts as
    sent only once RabbitMQ has taken it.
    """
    if is_redis_url(url):
        options: dict[str, Any] = {"visibility_timeout": VISIBILITY_TIMEOUT_S}
        if settings.celery_broker_key_prefix:
            options["global_keyprefix"] = settings.celery_broker_key_prefix
        return options
    if is_amqp_url(url):
        return {"confirm_publish": True}
    return {}


def result_transport_options(settings: Settings) -> dict[str, Any]:
    """The result backend's transport options: on Redis, a result write also retries every
    second while Redis is down, so a task's outcome is stored within a second or two of Redis
    being back."""
    options = transport_options(settings.result_backend, settings)
    if is_redis_url(settings.result_backend):
        options["retry_policy"] = {
            "max_retries": 20,
            "interval_start": 0,
            "interval_step": 1,
            "interval_max": 1,
        }
    return options


def _durable(name: str) -> Queue:
    # One direct exchange per queue, both durable: on RabbitMQ the queue outlives a broker
    # restart with its persistent messages, and a redeclare with other flags would be refused.
    return Queue(name, Exchange(name, durable=True), routing_key=name, durable=True)


def celery_config(settings: Settings) -> dict[str, Any]:
    """The lowercase Celery settings for ``app.config_from_object``."""
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        "broker_transport_options": transport_options(settings.broker_url, settings),
        "result_backend_transport_options": result_transport_options(settings),
        "visibility_timeout": VISIBILITY_TIMEOUT_S,
        "broker_connection_retry_on_startup": True,
        # Redis outages: reconnect every second (not kombu's 2, 4, 6 … 30 s), forever.
        "broker_connection_retry": True,
        "broker_connection_max_retries": None,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "result_expires": 24 * 3600,
        "timezone": "UTC",
        "enable_utc": True,
        "include": list(TASK_MODULES),
        "task_acks_late": True,
        "task_acks_on_failure_or_timeout": True,
        "task_reject_on_worker_lost": False,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": TASK_TIME_LIMIT_S,
        "task_track_started": True,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": False,
        # Reconnects to the broker every second and dead-letters what it cannot decode
        # (worker/tasks/misfits.py, schedules/reconnect.py); unknown tasks likewise.
        "worker_consumer": "worker.tasks.misfits:MisfitConsumer",
        "task_default_queue": LIFECYCLE_QUEUE,
        "task_queues": tuple(
            _durable(name) for name in (LIFECYCLE_QUEUE, QUERY_QUEUE, EVENTS_QUEUE, DEFAULT_QUEUE)
        ),
        "task_routes": {
            "recordings.*": {"queue": LIFECYCLE_QUEUE, "routing_key": LIFECYCLE_QUEUE},
            "discovery.callback": {"queue": EVENTS_QUEUE, "routing_key": EVENTS_QUEUE},
            "discovery.publish": {"queue": EVENTS_QUEUE, "routing_key": EVENTS_QUEUE},
            "discovery.*": {"queue": QUERY_QUEUE, "routing_key": QUERY_QUEUE},
        },
        "beat_schedule": {
            "discovery.poll": {
                "task": "discovery.poll",
                "schedule": settings.poll_every_s,
                "options": {"expires": settings.poll_every_s},
            },
        },
        "task_publish_retry": True,
        # Bounded so a publisher gives up within about 1.5 s while the broker is down: the web
        # answers a callback 503 in time (the vendor retries) and the dispatcher's unpublished
        # actions come back after their lease.
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1.0,
        },
    }

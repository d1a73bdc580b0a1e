"""A Celery worker consumer that reconnects to its broker every second or so.

kombu's ``ensure_connection`` defaults to waits of 2, 4, 6 … up to 30 s between attempts, and
Celery's consumer passes no intervals: after a 30 s Redis outage a worker came back up to 12 s
late. This consumer (the base of the worker_consumer in config/celery.py) retries at
:data:`RECONNECT_INTERVAL_S` steady, so due actions flow again within a few seconds of Redis,
and survives a failing clean-up of the lost connection.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.consumer import Consumer

from schedules.leases import forget_received

__all__ = ["RECONNECT_INTERVAL_S", "QuickReconnectConsumer"]

log = logging.getLogger(__name__)

RECONNECT_INTERVAL_S = 1.0


class QuickReconnectConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer with a steady one-second broker reconnect."""

    def ensure_connected(self, conn: Any) -> Any:
        original = conn.ensure_connection

        def steady(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("interval_start", 0)
            kwargs.setdefault("interval_step", RECONNECT_INTERVAL_S)
            kwargs.setdefault("interval_max", RECONNECT_INTERVAL_S)
            return original(*args, **kwargs)

        conn.ensure_connection = steady
        return super().ensure_connected(conn)

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        # Celery 5.7 collects the lost connection, then closes it; the close restores unacked
        # messages through the collected connection and raises AttributeError, which ends the
        # whole worker (seen with eta messages held when Redis went away). What they carry is
        # leased in Redis and issued again after its lease: nothing is lost by skipping it.
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError as error:
            log.warning("broker connection lost; its cleanup failed (%s), reconnecting", error)
        finally:
            # Celery drops the messages it held (eta, prefetch): their leases must run out.
            forget_received()

"""A Celery worker consumer that reconnects to its broker every second or so.

kombu's ``ensure_connection`` defaults to waits of 2, 4, 6 … up to 30 s between attempts, and
Celery's consumer passes no intervals: after a 30 s Redis outage a worker came back up to 12 s
late. This consumer (the base of the worker_consumer in config/celery.py) retries at
:data:`RECONNECT_INTERVAL_S` steady, so due actions flow again within a few seconds of Redis,
and survives a failing clean-up of the lost connection, and the ack of a task that ended after
it (its message belongs to the lost connection).
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

    def call_soon_ack(self, p: Any, *args: Any, **kwargs: Any) -> Any:
        # A task running while the broker went away (an action waiting for its second, a call
        # in progress) ends after the reconnect; kombu then acks its message through the lost,
        # collected connection and raises AttributeError, which ends the whole worker. The
        # message stays unacked in the broker and is delivered again; its actions are guarded.
        def ack_or_leave(*ack_args: Any, **ack_kwargs: Any) -> Any:
            try:
                return p(*ack_args, **ack_kwargs)
            except AttributeError as error:
                log.warning("ack through a lost broker connection failed (%s); left unacked", error)
                return None

        return super().call_soon_ack(ack_or_leave, *args, **kwargs)

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

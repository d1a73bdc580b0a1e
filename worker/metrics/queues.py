"""The Celery queues: how many messages wait on each and which workers consume it.

Read by ``/metrics`` (``anyrtc_queue_messages{queue,consumed}``) and ``doctor``. Depths come from
the broker (a passive declare: Redis list length or the AMQP queue's count), consumers from the
workers themselves (``inspect().active_queues()``), so both hold for every machine. Celery's
default queue ``celery`` is always included: a task sent by name without the product's routes
lands there, and nothing of the product consumes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kombu import Connection

from config.celery import DEFAULT_QUEUE, EVENTS_QUEUE, LIFECYCLE_QUEUE, QUERY_QUEUE

__all__ = ["WATCHED_QUEUES", "ask_workers", "consumers_of", "queue_depths"]

WATCHED_QUEUES = (LIFECYCLE_QUEUE, QUERY_QUEUE, EVENTS_QUEUE, DEFAULT_QUEUE)


def queue_depths(
    connection: Connection | None = None, queues: Iterable[str] = WATCHED_QUEUES
) -> dict[str, int]:
    """Messages ready on each queue (0 for a queue the broker does not know), through
    ``connection`` (default: the Celery app's, with its transport options, key prefix included)."""
    if connection is None:
        from worker.celery import app

        connection = app.connection_for_read()
    depths: dict[str, int] = {}
    with connection:
        for queue in queues:
            channel = connection.channel()
            try:
                if connection.transport.driver_type == "redis":
                    # kombu's passive declare checks EXISTS without the broker's global key
                    # prefix, so it says "no queue" for every queue then; the channel's own size
                    # (LLEN of the priority lists) goes through the prefixed client.
                    depths[queue] = int(channel._size(queue))
                else:
                    declared = channel.queue_declare(queue=queue, passive=True)
                    depths[queue] = int(declared.message_count)
            except connection.channel_errors:
                depths[queue] = 0
            finally:
                channel.close()
    return depths


def consumers_of(active_queues: dict[str, list[dict[str, Any]]] | None) -> dict[str, list[str]]:
    """Queue name -> the nodes consuming it, from ``inspect().active_queues()``'s reply."""
    consumers: dict[str, list[str]] = {}
    for node, queues in sorted((active_queues or {}).items()):
        for queue in queues or []:
            consumers.setdefault(str(queue.get("name")), []).append(node)
    return consumers


def ask_workers(timeout_s: float = 2.0) -> dict[str, list[dict[str, Any]]]:
    """Every answering worker's consumed queues (empty when none answers)."""
    from worker.celery import app

    return app.control.inspect(timeout=timeout_s).active_queues() or {}

"""The floor of bench/herd.py: bare vendor calls fired at the due second from the lifecycle
workers themselves, with no Redis work.

Loaded into the Procfile's ``lifecycle`` workers with ``--include=herd_floor`` (bench/ on
PYTHONPATH), so the floor runs in the very processes, threads and connection pool that carried
the product's herd a moment before: the same task delivery (batches of ``BATCH_SIZE``, started
``PREPARE_S`` ahead), the same prepared requests and warmed connections, the same action pool
(sized to the worker's concurrency), the same wait for the second. What is left out is all the
product adds: reading the bookings, the guard script and its call token, the recording log and
finish_call.lua. ``ours / floor`` is therefore the cost of exactly-once at the second.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import Celery, shared_task

from config.celery import LIFECYCLE_QUEUE
from schedules import get_lifecycle
from schedules.dispatch_step import BATCH_SIZE, PREPARE_S
from schedules.firing import action_pool, pool_threads, wait_until
from schedules.vendor import call_vendor, prepare_call

__all__ = ["FLOOR_TASK", "floor_batch", "publish_floor"]

FLOOR_TASK = "herd.floor_batch"


@shared_task(name=FLOOR_TASK, ignore_result=True)
def floor_batch(rooms: list[str], due_at: float) -> dict[str, Any]:
    """Start each of ``rooms`` at ``due_at``: prepared and warmed ahead, fired on the action
    pool, as the product's batch is, without any Redis work."""
    ctx = get_lifecycle()
    client = ctx.client
    calls = [(room, prepare_call(client, "start", room, {})) for room in rooms]
    client.warm(min(len(calls), pool_threads()), action_pool().submit)
    wait_until(ctx, due_at)
    pool = action_pool()
    futures = [
        pool.submit(call_vendor, client, "start", room, {}, ctx.results, prepared)
        for room, prepared in calls
    ]  # urgent, as the product's calls are
    outcomes = [future.result().outcome for future in futures]
    return {"calls": len(outcomes), "ok": outcomes.count("ok")}


def publish_floor(app: Celery, rooms: list[str], due_at: float) -> None:
    """One floor task per ``BATCH_SIZE`` rooms, on the lifecycle queue, started ``PREPARE_S``
    before ``due_at`` as the dispatcher's batches are."""
    eta = datetime.fromtimestamp(due_at - PREPARE_S, tz=UTC)
    with app.producer_or_acquire() as producer:
        for start in range(0, len(rooms), BATCH_SIZE):
            app.send_task(
                FLOOR_TASK,
                kwargs={"rooms": rooms[start : start + BATCH_SIZE], "due_at": due_at},
                queue=LIFECYCLE_QUEUE,
                producer=producer,
                eta=eta,
            )

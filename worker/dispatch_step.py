"""Runs the dispatcher inside ``celery -A worker worker`` (a worker bootstep), so no extra
process type is needed.

Every worker that consumes the ``lifecycle`` queue runs one dispatcher thread. Several running
at once is safe, because the claim script leases each action to one of them; more than one only
means a dead worker's share is picked up by the others at their next tick.

Registered in ``worker/celery.py`` with ``app.steps["worker"].add(DispatchStep)``.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from celery import Celery, bootsteps

from config.celery import LIFECYCLE_QUEUE
from schedules.dispatcher import Dispatcher, Publisher
from worker.lifecycle import get_lifecycle

__all__ = ["PERFORM_TASK", "DispatchStep", "make_publisher"]

log = logging.getLogger(__name__)

PERFORM_TASK = "recordings.perform"
_JOIN_TIMEOUT_S = 5.0


def make_publisher(app: Celery) -> Publisher:
    """A batch publisher for :class:`Dispatcher`: one ``recordings.perform`` task per action,
    with the action id as task id (so Flower shows it). An action claimed ahead of its due
    time gets that time as eta: at most DISPATCH_AHEAD_S away, far below the broker's
    visibility timeout, so the eta pitfalls of long-range scheduling do not apply."""

    def publish(pairs: list[tuple[str, float]], now: float) -> int:
        failed = 0
        with app.producer_or_acquire() as producer:
            for action_id, due_at in pairs:
                eta = datetime.fromtimestamp(due_at, tz=UTC) if due_at > now else None
                try:
                    app.send_task(
                        PERFORM_TASK,
                        kwargs={"action": action_id},
                        task_id=action_id,
                        queue=LIFECYCLE_QUEUE,
                        producer=producer,
                        eta=eta,
                    )
                except Exception:
                    failed += 1
                    log.exception("could not publish %s", action_id)
        return failed

    return publish


class DispatchStep(bootsteps.StartStopStep):
    """Start the dispatcher thread with the worker's pool; stop it on shutdown."""

    requires = ("celery.worker.components:Pool",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def include_if(self, worker: Any) -> bool:
        queues = worker.app.amqp.queues.consume_from
        return LIFECYCLE_QUEUE in (queues or {})

    def start(self, worker: Any) -> None:
        ctx = get_lifecycle()
        dispatcher = Dispatcher(
            ctx.store,
            make_publisher(worker.app),
            lease_s=ctx.lease_s,
            clock=ctx.clock,
            interval_s=ctx.settings.dispatch_interval_s,
            ahead_s=ctx.settings.dispatch_ahead_s,
        )
        self._stop.clear()
        self._thread = threading.Thread(
            target=dispatcher.run, args=(self._stop,), name="lifecycle-dispatcher", daemon=True
        )
        self._thread.start()
        log.info(
            "lifecycle dispatcher started (interval %.2fs, ahead %.1fs, lease %.1fs)",
            ctx.settings.dispatch_interval_s,
            ctx.settings.dispatch_ahead_s,
            ctx.lease_s,
        )

    def stop(self, worker: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(_JOIN_TIMEOUT_S)
            self._thread = None

    def shutdown(self, worker: Any) -> None:
        self.stop(worker)

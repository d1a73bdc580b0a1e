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
import time
from datetime import UTC, datetime
from typing import Any

from celery import Celery, bootsteps
from celery.signals import task_postrun, task_received, task_revoked

from config.celery import LIFECYCLE_QUEUE
from schedules import get_lifecycle
from schedules.counts import BookingCounts, EndedPruner
from schedules.dispatcher import Dispatcher, Publisher
from schedules.firing import PREPARE_S, set_pool_threads

__all__ = [
    "BATCH_SIZE",
    "PERFORM_BATCH_TASK",
    "PERFORM_TASK",
    "PREPARE_S",
    "PUBLISH_PACE_S",
    "DispatchStep",
    "make_publisher",
]

log = logging.getLogger(__name__)

PERFORM_TASK = "recordings.perform"
PERFORM_BATCH_TASK = "recordings.perform_batch"
# Most actions per recordings.perform_batch message. Small enough that a herd's messages spread
# over every lifecycle worker; large enough that Celery's per-message work (publish, events,
# receive, ack) is paid once for many actions.
BATCH_SIZE = 16
# Pause after publishing each message claimed ahead. Every lifecycle worker takes messages off
# the queue as they come (one per BRPOP on Redis), but the worker whose dispatcher is publishing
# is slow to ask again (its publishing thread holds the GIL): unpaced, it got 26 of a herd's 65
# batches in one run and its threads made two more rounds of calls than the other's. With 5 ms
# the shares were 33/32 and 34/31 (2 ms: 37/28, 34/31). The pauses of one publish never take
# more than half the time left before its first task starts.
PUBLISH_PACE_S = 0.005
_JOIN_TIMEOUT_S = 5.0


def group_actions(
    pairs: list[tuple[str, float]], now: float, size: int = BATCH_SIZE
) -> list[tuple[list[str], float | None]]:
    """Split claimed ``(action_id, due_at)`` pairs into groups of at most ``size`` actions due
    in the same second, each with the earliest due time in the group when it is ahead of
    ``now``, else None (actions already due, e.g. issued again after a lease, go together).

    The task of a group waits for each action's own due time (schedules/firing.py), and the
    action script refuses any action before it.
    """
    by_second: dict[int | None, list[tuple[str, float]]] = {}
    for action_id, due_at in pairs:
        key = int(due_at) if due_at > now else None
        by_second.setdefault(key, []).append((action_id, due_at))
    groups: list[tuple[list[str], float | None]] = []
    for key, members in by_second.items():
        for start in range(0, len(members), size):
            chunk = members[start : start + size]
            due = None if key is None else min(due_at for _, due_at in chunk)
            groups.append(([action_id for action_id, _ in chunk], due))
    return groups


def make_publisher(
    app: Celery,
    batch_size: int = BATCH_SIZE,
    prepare_s: float = PREPARE_S,
    pace_s: float = PUBLISH_PACE_S,
) -> Publisher:
    """A batch publisher for :class:`Dispatcher`: one ``recordings.perform_batch`` task per
    group of up to ``batch_size`` actions due in the same second (task id
    ``batch:<first action id>:<n>``), or one ``recordings.perform`` task for an action alone in
    its second (task id = the action id), so Flower shows what was dispatched. A group claimed
    ahead of its due time is published with an eta ``prepare_s`` before it (at most
    DISPATCH_AHEAD_S away, far below the broker's visibility timeout, so the eta pitfalls of
    long-range scheduling do not apply): the task prepares its calls, then waits for the
    second."""

    def publish(pairs: list[tuple[str, float]], now: float) -> int:
        failed = 0
        groups = group_actions(pairs, now, batch_size)
        starts = [due - prepare_s for _, due in groups if due is not None and due - prepare_s > now]
        pause = min(pace_s, (min(starts) - now) / 2 / len(starts)) if starts else 0.0
        with app.producer_or_acquire() as producer:
            for actions, due_at in groups:
                start_at = None if due_at is None else due_at - prepare_s
                eta = None
                if start_at is not None and start_at > now:
                    eta = datetime.fromtimestamp(start_at, tz=UTC)
                if len(actions) == 1:
                    name, kwargs, task_id = PERFORM_TASK, {"action": actions[0]}, actions[0]
                else:
                    name, kwargs = PERFORM_BATCH_TASK, {"actions": actions}
                    task_id = f"batch:{actions[0]}:{len(actions)}"
                try:
                    app.send_task(
                        name,
                        kwargs=kwargs,
                        task_id=task_id,
                        queue=LIFECYCLE_QUEUE,
                        producer=producer,
                        eta=eta,
                    )
                except Exception:
                    failed += len(actions)
                    log.exception("could not publish %s", task_id)
                if eta is not None and pause > 0:
                    time.sleep(pause)
        return failed

    return publish


def _held_actions(name: str | None, kwargs: Any) -> list[str] | None:
    if not isinstance(kwargs, dict):
        return None
    if name == PERFORM_TASK:
        return [kwargs.get("action")]
    if name == PERFORM_BATCH_TASK and isinstance(kwargs.get("actions"), list):
        return list(kwargs["actions"])
    return None


@task_received.connect(weak=False)
def _hold_received(request: Any = None, **_: Any) -> None:
    # From the moment a worker has the message (waiting for its eta or a free thread) its
    # actions are this process's: their leases are kept alive until the task has run.
    actions = _held_actions(getattr(request, "name", None), getattr(request, "kwargs", None))
    if actions is not None:
        get_lifecycle().leases.hold(request.id, actions)


@task_postrun.connect(weak=False)
def _release_run(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id and getattr(task, "name", None) in (PERFORM_TASK, PERFORM_BATCH_TASK):
        get_lifecycle().leases.release(task_id)


@task_revoked.connect(weak=False)
def _release_revoked(request: Any = None, **_: Any) -> None:
    if request is not None and getattr(request, "name", None) in (PERFORM_TASK, PERFORM_BATCH_TASK):
        get_lifecycle().leases.release(request.id)


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
        # Batched actions run on their own pool: as many threads as the worker's, so -c keeps
        # bounding the actions a process runs at once.
        threads = getattr(worker, "concurrency", None) or 1
        set_pool_threads(threads)
        # One vendor connection per thread that may call at once: the action pool's and the
        # worker's own (a lone recordings.perform calls from its task thread).
        ctx.client.size_pool(2 * threads)
        dispatcher = Dispatcher(
            ctx.store,
            make_publisher(worker.app),
            lease_s=ctx.lease_s,
            clock=ctx.clock,
            interval_s=ctx.settings.dispatch_interval_s,
            ahead_s=ctx.settings.dispatch_ahead_s,
        )
        self._stop.clear()
        # The heartbeat runs until the process ends (a daemon thread): a warm shutdown waits
        # for calls in progress after this step has stopped, and they stay leased meanwhile.
        ctx.leases.start()
        EndedPruner(BookingCounts(ctx.redis, ctx.keys), clock=ctx.clock).start()
        self._thread = threading.Thread(
            target=dispatcher.run, args=(self._stop,), name="lifecycle-dispatcher", daemon=True
        )
        self._thread.start()
        log.info(
            "lifecycle dispatcher started (interval %.2fs, ahead %.1fs, lease %.1fs, heartbeat)",
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

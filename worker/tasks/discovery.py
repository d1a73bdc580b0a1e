"""Discovery tasks (discovery.*): budgeted polling, room look-ups, callbacks, fan-out.

Thin on purpose: each task calls one method of :class:`worker.discovery.service.Discovery`
and turns its answer into a retry when needed. A task denied by the query budget is re-queued
with the limiter's countdown (``max_retries=None``): no sleeping in a worker slot.

Queues (config/celery.py): ``discovery.callback`` and ``discovery.publish`` on ``events``;
``discovery.poll``, ``discovery.lookup_room`` and ``discovery.relist`` on ``query``.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Any

import redis
from celery import Task
from celery.signals import worker_ready

from config.celery import EVENTS_QUEUE, QUERY_QUEUE
from config.settings import get_settings
from worker.celery import app
from worker.discovery.service import Discovery
from worker.errors import PublishFailed

__all__ = ["callback", "discovery", "lookup_room", "poll", "publish", "relist"]

log = logging.getLogger(__name__)

_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
_lock = threading.Lock()
_discovery: Discovery | None = None


def _enqueue(name: str, args: list[Any], countdown: float) -> None:
    app.send_task(name, args=args, countdown=countdown or None)


def discovery() -> Discovery:
    """This process's Discovery (built on first use, shared by the pool's threads)."""
    global _discovery
    if _discovery is None:
        with _lock:
            if _discovery is None:
                _discovery = Discovery(get_settings(), _enqueue)
    return _discovery


def _backoff(task: Task, errors: int | None = None) -> float:
    settings = get_settings()
    count = task.request.retries if errors is None else errors
    delay = settings.retry_backoff_base_s * 2 ** min(max(count, 0), 16)
    return random.uniform(0.5, 1.0) * min(delay, settings.retry_backoff_max_s)


def _retry_on_error(task: Task, exc: Exception | None = None, **options: Any) -> Exception:
    """Re-queue after an error, backing off by the errors so far (carried in ``errors``): the
    budget's waits are retries too, but no reason to back off."""
    kwargs = dict(task.request.kwargs or {})
    previous = kwargs.get("errors", 0)
    errors = previous if isinstance(previous, int) and previous >= 0 else 0
    kwargs["errors"] = errors + 1
    return task.retry(exc=exc, kwargs=kwargs, countdown=_backoff(task, errors), **options)


def _budget_countdown(wait_s: float) -> float:
    # A few ms of jitter so waiting look-ups do not all wake in the same instant.
    return wait_s + random.uniform(0.0, min(0.25, 0.02 * get_settings().query_rate_period_s))


@app.task(name="discovery.poll", bind=True, max_retries=None, ignore_result=True)
def poll(self: Task, errors: int = 0) -> dict[str, Any]:
    """Sweep, then poll getVodListByTime (beat sends this every ``poll_every_s``); ``errors``:
    how many errors this poll has retried after (its back-off)."""
    service = discovery()
    try:
        service.drain_intake()
        sweep = service.sweeper.run()
        result = service.poller.run(self.request.id)
    except _REDIS_DOWN as exc:
        raise _retry_on_error(self, exc, expires=None) from exc
    if result.status == "retry":
        # ``expires=None``: beat's expiry must not drop a poll that waits for its slot.
        if result.retry_after is None:
            raise _retry_on_error(self, expires=None)
        raise self.retry(countdown=result.retry_after, expires=None)
    if result.error is not None:
        log.error("poll failed: %s", result.error)
    return {
        "status": result.status,
        "pages": result.pages,
        "files": result.files,
        "reason": result.reason,
        "republished": len(sweep.republished),
        "delivered_after_wait": len(sweep.delivered),
    }


def _budgeted(task: Task, run: Callable[[], Any]) -> Any:
    """Run one budgeted query step; re-queue ``task`` with the wait the budget (or Redis) gives."""
    try:
        result = run()
    except _REDIS_DOWN as exc:
        raise _retry_on_error(task, exc) from exc
    if result.status == "retry":
        if result.retry_after is None:
            raise _retry_on_error(task)
        raise task.retry(countdown=_budget_countdown(result.retry_after))
    return result


@app.task(name="discovery.lookup_room", bind=True, max_retries=None, ignore_result=True)
def lookup_room(
    self: Task, room_id: str, beg_ms: int | None = None, end_ms: int | None = None
) -> dict[str, Any]:
    """Ask for a room look-up by hand (``getVodInfoByRoomId``, low priority): it joins the
    look-up queue that every discovery worker's look-up loop drains within the budget."""
    service = discovery()
    try:
        if beg_ms is not None and end_ms is not None:
            service.lookups.request(str(room_id), int(beg_ms), int(end_ms))
            return {"status": "queued"}
        if service.lookups.window(str(room_id)) is None:
            return {"status": "nothing"}
        service.lookups.postpone(str(room_id), 0.0)
    except _REDIS_DOWN as exc:
        raise self.retry(exc=exc, countdown=_backoff(self)) from exc
    return {"status": "queued"}


@worker_ready.connect(weak=False)
def _start_discovery_loops(sender: Any = None, **_: Any) -> None:
    # One look-up loop in every worker that consumes the query queue (the budgeted work), and
    # there one booking teller (publishes the lifecycle's booking events downstream); one resume
    # loop in every discovery worker (it publishes and queues polls, no vendor query).
    consume = getattr(getattr(sender, "app", app).amqp.queues, "consume_from", None) or {}
    if QUERY_QUEUE in consume:
        discovery().lookup_loop.start()
        discovery().teller.start()
    if QUERY_QUEUE in consume or EVENTS_QUEUE in consume:
        discovery().resume_loop.start()
        discovery().watch_loop.start()


@app.task(name="discovery.relist", bind=True, max_retries=None, ignore_result=True)
def relist(self: Task, beg_ms: int, end_ms: int, errors: int = 0) -> dict[str, Any]:
    """A narrow getVodListByTime for overdue files of unknown room (low priority)."""
    result = _budgeted(self, lambda: discovery().runner.relist(int(beg_ms), int(end_ms)))
    return {"status": result.status, "files": result.files}


@app.task(name="discovery.callback", bind=True, max_retries=None, ignore_result=True)
def callback(self: Task, payload: dict[str, Any]) -> str:
    """A validated vendor callback (enqueued by the web app): deliver its file once."""
    if not isinstance(payload, dict):
        discovery().ops.error("callback-task", f"payload must be an object, not {type(payload)}")
        return "invalid"
    try:
        return discovery().callback(payload)
    except _REDIS_DOWN as exc:
        raise self.retry(exc=exc, countdown=_backoff(self)) from exc


@app.task(name="discovery.publish", bind=True, max_retries=8, ignore_result=True)
def publish(self: Task, fid: str) -> bool:
    """Publish a claimed but unconfirmed message again (same message id)."""
    try:
        return discovery().fanout.republish(str(fid))
    except (PublishFailed, *_REDIS_DOWN) as exc:
        # Past max_retries the message stays pending and the next sweep tries again.
        raise self.retry(exc=exc, countdown=_backoff(self)) from exc

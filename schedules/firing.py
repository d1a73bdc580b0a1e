"""Claimed actions fired at their second: armed before it, called at it, settled after it.

The dispatcher hands actions to a worker ahead of their due time (DISPATCH_AHEAD_S), and the task
starts ``PREPARE_S`` before it. Everything that does not depend on the moment is done then:

- each booking is read and its vendor request built (URL, query, JSON body: a prepared request);
- the vendor client's pool opens the connections the herd will use (TCP, and TLS for https),
  and the Redis client's pool one per action thread;
- each action is *armed*: its guard script (apply_action.lua: the state checks, the booking's
  transition and the one call token) runs as of the action's due time (:func:`arm`). A call it
  grants is leased by this process's heartbeat (:meth:`LeaseKeeper.hold_attempt`); the task
  hands it to the action pool at the due time.

At the second only the vendor call and its reply's note (:func:`schedules.actions.call`)
remain. What follows a reply (recording log, finish_call.lua, a follow-on operation) is queued
on the same pool as work that is not urgent (:class:`~schedules.workpool.PriorityPool`): it
runs once no call is waiting, so at the top of the hour every thread makes calls until the
herd's last call is out, and settles afterwards. The pool has as many threads as the worker's
concurrency, so ``-c`` still bounds the vendor calls a process makes at once.

Arming moves the moment a booking's state is decided from its due time to at most
``PREPARE_S`` before it (the transition is dated at the due time). An event that reaches Redis
after that is applied to the booking as it is then: a cancel or a stop-now in the last second
before a start finds the booking ``starting`` and releases it right after the start, as a
cancel just after the start always did; a window extended in the last second before its stop
finds it ``stopping`` and starts again. Nothing reaches the vendor early: a granted call is
sent at its due time, never before, and no action is armed more than ``PREPARE_S`` ahead.

Exactly once is unchanged: each action still runs its guard script once, calls the vendor only
with the token it got, and settles through finish_call.lua; a prepared request is sent only
when the grant asks for that very call (:meth:`PreparedCall.fits`), else it is built at the
second. What the order changes is the window of a crash: a process killed between arming and
the second, or during a herd before its replies were settled, holds attempts nobody finishes;
they are issued again after the lease, as a call whose reply was lost always was (a noted reply
is settled without a second call; the vendor's "already recording" counts as done).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from schedules.actions import Begun, begin, call, conclude, perform, run_operation
from schedules.context import Lifecycle
from schedules.keys import parse_action
from schedules.outcomes import CallGrant
from schedules.reach import ReachCheck
from schedules.vendor import CallOutcome, PreparedCall, prepare_call
from schedules.workpool import PriorityPool
from worker.redis import warm_connections

__all__ = [
    "POOL_THREADS",
    "PREPARE_S",
    "Planned",
    "action_pool",
    "arm",
    "perform_batch",
    "perform_on_time",
    "pool_threads",
    "prepare",
    "set_pool_threads",
    "wait_until",
]

log = logging.getLogger(__name__)

# A task claimed ahead starts this long before its due time (its eta, dispatch_step.py), to read
# its bookings, build its requests, open connections and arm its actions, then waits for the
# second. Tens of milliseconds on a quiet machine; a second leaves room on a loaded one, and
# bounds how early a booking's state is decided and how long a waiting task holds a thread.
PREPARE_S = 1.0

# Redis is asked whether it still answers this long before a batch's first second: armed calls
# are not made into an outage (schedules/reach.py).
REACH_AHEAD_S = 0.2
_UNSENT = "Redis did not answer just before the second; left to its lease (made after the outage)"

# Threads of the process-wide action pool unless the worker sizes it (to its concurrency).
POOL_THREADS = 32
_pool: PriorityPool | None = None
_pool_size = POOL_THREADS
_pool_lock = threading.Lock()
_reach = ReachCheck()


def set_pool_threads(threads: int) -> None:
    """Size the action pool (before its first use; a pool already running is kept)."""
    global _pool_size
    with _pool_lock:
        _pool_size = max(1, int(threads))


def pool_threads() -> int:
    """The action pool's size (what it is, or will be when first used)."""
    with _pool_lock:
        return _pool_size


def action_pool() -> PriorityPool:
    """The process-wide pool for vendor calls (urgent) and their settlements (not urgent)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = PriorityPool(_pool_size, name="lifecycle-action")
        return _pool


def _forget_pool() -> None:
    # A forked child has none of the parent's threads: it builds its own pools on first use.
    global _pool, _pool_lock, _reach
    _pool = None
    _pool_lock = threading.Lock()
    _reach = ReachCheck()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


@dataclass(frozen=True)
class Planned:
    """What was read and built for one action before its second: when it is due (None: read
    nothing, e.g. a room operation or a booking whose next action is another) and its call."""

    due_at: float | None = None
    call: PreparedCall | None = None
    room_id: str | None = None


def prepare(ctx: Lifecycle, action_ids: Iterable[str]) -> dict[str, Planned]:
    """Read each booking action's booking and build the vendor call it will make if it opens
    the room's operation: the start with the booking's parameters, or the stop of its room.
    Reads only; the guard script decides at the due time whether the call is made."""
    # The guard and settle scripts are about to run from every thread at once.
    ctx.store.scripts.ensure_loaded()
    plans: dict[str, Planned] = {}
    for action_id in action_ids:
        ref = parse_action(action_id)
        view = None if ref.is_room_op else ctx.reader.booking(ref.subject)
        if view is None or view.next_action != action_id:
            plans[action_id] = Planned()
            continue
        room_id = view.room_id if ref.kind == "start" else view.held_room
        prepared = prepare_call(ctx.client, ref.kind, room_id, view.params) if room_id else None
        plans[action_id] = Planned(view.next_at, prepared, room_id or "")
    return plans


def wait_until(ctx: Lifecycle, when: float | None) -> None:
    """Sleep (on the injected clock) until ``when``; at once if it passed or is None."""
    if when is None:
        return
    wait = when - ctx.clock()
    if wait > 0:
        ctx.sleep(wait)


def _warm(ctx: Lifecycle, plans: dict[str, Planned]) -> None:
    """Open ahead the vendor and Redis connections the pool's threads will use at once."""
    calls = sum(1 for plan in plans.values() if plan.call is not None)
    if calls:
        try:
            ctx.client.warm(min(calls, pool_threads()), action_pool().submit)
            warm_connections(ctx.redis, min(calls, pool_threads()))
        except Exception:  # warming only saves time: the calls connect themselves if need be
            log.exception("could not open connections ahead")


def arm(ctx: Lifecycle, action_id: str, plan: Planned) -> Begun:
    """Run ``action_id``'s guard as of its due time, at most ``PREPARE_S`` before it (waits
    until then if called earlier). A granted call is held by this process's heartbeat from now
    on (``Begun.held``, released once it is settled); it must be sent at the due time, never
    before."""
    if plan.due_at is not None:
        wait_until(ctx, plan.due_at - PREPARE_S)
    begun = begin(ctx, action_id, plan.room_id, as_of=plan.due_at)
    if begun.grant is not None:
        begun.held = ctx.leases.hold_attempt(begun.grant.op_id, begun.grant.token)
    return begun


def perform_on_time(ctx: Lifecycle, action_id: str) -> dict[str, Any]:
    """:func:`schedules.actions.perform`, prepared and armed ahead, called at the due time."""
    plans = prepare(ctx, [action_id])
    _warm(ctx, plans)
    plan = plans[action_id]
    begun = arm(ctx, action_id, plan)
    if begun.deferred:
        return _perform_at_due(ctx, action_id, plan)
    _leave_unsent_without_redis(ctx, [(action_id, begun)], plan.due_at)
    if begun.grant is None:
        return begun.summary
    try:
        wait_until(ctx, plan.due_at)
        begun.summary["operations"] = run_operation(ctx, begun.grant, begun.holders, plan.call)
    finally:
        if begun.held is not None:
            ctx.leases.release_attempt(begun.held)
    return begun.summary


def _perform_at_due(ctx: Lifecycle, action_id: str, plan: Planned) -> dict[str, Any]:
    """An action not armed (its room was mid-operation): guarded and performed at its due
    time, as before arming, so nothing that follows from it comes early."""
    wait_until(ctx, plan.due_at)
    return perform(ctx, action_id, plan.call)


def _leave_unsent_without_redis(
    ctx: Lifecycle, armed: list[tuple[str, Begun]], due_at: float | None
) -> None:
    """Just before ``due_at``, when any of ``armed`` holds a call: does Redis still answer (one
    PING per process, shared)? If not, each armed call is left unsent (:func:`_unsent`)."""
    granted = [(action_id, begun) for action_id, begun in armed if begun.grant is not None]
    if not granted:
        return
    if due_at is not None:
        wait_until(ctx, due_at - REACH_AHEAD_S)
    if _reach.reachable(ctx.redis.ping):
        return
    log.warning("%s: %s", ", ".join(action_id for action_id, _ in granted), _UNSENT)
    for _, begun in granted:
        _unsent(ctx, begun)


def _unsent(ctx: Lifecycle, begun: Begun) -> None:
    """An armed call not made: its hold is dropped, so its lease runs out and the operation is
    issued again (by any worker) once Redis is back."""
    if begun.held is not None:
        ctx.leases.release_attempt(begun.held)
    begun.grant = begun.held = None
    begun.summary["verdict"] = "unsent"
    begun.summary["detail"] = _UNSENT


def perform_batch(ctx: Lifecycle, action_ids: list[str]) -> dict[str, Any]:
    """Carry out several claimed actions, prepared and armed ahead, each called at its due
    time, calls before settlements; waits for all of them. Returns counts per verdict, the ids
    of actions that raised and each action's summary (no secrets).

    Each action is performed exactly as :func:`schedules.actions.perform` does alone, with its
    own lease and its own guards: one that raises is logged and left to its lease (issued
    again when it runs out), and changes nothing for the others. A batch delivered twice is
    harmless for the same reason a single action delivered twice is.
    """
    unique = list(dict.fromkeys(action_ids))
    plans = prepare(ctx, unique)
    _warm(ctx, plans)
    pool = action_pool()
    failed: list[str] = []
    armed: list[tuple[str, Begun]] = []
    for action_id in unique:
        try:
            armed.append((action_id, arm(ctx, action_id, plans[action_id])))
        except Exception:
            log.exception("action %s failed; issued again when its lease runs out", action_id)
            failed.append(action_id)
    # The calls go to the pool together at the batch's first second, so the pool's threads
    # take them in order as each is free (not 16 threads asleep on one batch's calls).
    dues = [plan.due_at for plan in plans.values() if plan.due_at is not None]
    first = min(dues) if dues else None
    _leave_unsent_without_redis(ctx, armed, first)
    wait_until(ctx, first)
    firing = [(a, _submit(ctx, a, b, plans[a], pool)) for a, b in armed]
    verdicts: Counter[str] = Counter()
    summaries: dict[str, dict[str, Any]] = {}
    for action_id, future in firing:
        try:
            summary = _outcome(future)
        except Exception:
            log.exception("action %s failed; issued again when its lease runs out", action_id)
            failed.append(action_id)
            continue
        verdicts[str(summary.get("verdict", ""))] += 1
        summaries[action_id] = summary
    return {
        "actions": len(unique),
        "verdicts": dict(verdicts),
        "failed": failed,
        "summaries": summaries,
    }


def _submit(
    ctx: Lifecycle, action_id: str, begun: Begun, plan: Planned, pool: PriorityPool
) -> Future[Any]:
    if begun.deferred:
        return pool.submit(_perform_at_due, ctx, action_id, plan)
    if begun.grant is None:
        return _done(begun.summary)
    return pool.submit(_fire, ctx, begun, plan, pool)


def _done(summary: dict[str, Any]) -> Future[dict[str, Any]]:
    future: Future[dict[str, Any]] = Future()
    future.set_result(summary)
    return future


def _outcome(future: Future[Any]) -> dict[str, Any]:
    """An action's summary, through the futures of its call and of its settlement."""
    result = future.result()
    while isinstance(result, Future):
        result = result.result()
    return result  # type: ignore[no-any-return]


def _fire(
    ctx: Lifecycle, begun: Begun, plan: Planned, pool: PriorityPool
) -> Future[dict[str, Any]]:
    """At the due time: the armed action's call. What follows the reply is queued on ``pool``
    behind every call still waiting, and its future returned."""
    grant = begun.grant
    assert grant is not None and begun.held is not None
    try:
        wait_until(ctx, plan.due_at)
        sent_at = ctx.clock()
        outcome = call(ctx, grant, plan.call)
        return pool.submit(_settle, ctx, begun, grant, outcome, sent_at, begun.held, urgent=False)
    except BaseException:
        ctx.leases.release_attempt(begun.held)
        raise


def _settle(
    ctx: Lifecycle,
    begun: Begun,
    grant: CallGrant,
    outcome: CallOutcome,
    sent_at: float,
    held: str,
) -> dict[str, Any]:
    try:
        settled = conclude(ctx, grant, outcome, begun.holders, sent_at)
    finally:
        ctx.leases.release_attempt(held)
    follow = settled.pop("next_grant")
    begun.summary["operations"] = [settled, *(run_operation(ctx, follow) if follow else [])]
    return begun.summary

"""Claimed actions fired at their second: prepared before it, called at it, settled after it.

The dispatcher hands actions to a worker ahead of their due time (DISPATCH_AHEAD_S), and the task
starts a little before it (``PREPARE_S``, dispatch_step.py). Everything that does not depend on
the moment is done then:

- each booking is read and its vendor request built (URL, query, JSON body: a prepared request);
- the vendor client's pool opens the connections the herd will use (TCP, and TLS for https),
  and the Redis client's pool one per action thread;

and the task waits for the due time. At the second only what must happen at it remains, for
each action, on a thread of the process's action pool: its guard script (apply_action.lua: the
state check and the one call token; it refuses an action before its due time, so nothing
reaches the vendor early), then the send and the reply. What follows a reply (recording log,
finish_call.lua, a follow-on operation) is queued on the same pool as work that is not urgent
(:class:`~schedules.workpool.PriorityPool`): it runs once no action is waiting, so at the top of
the hour every thread makes calls until the herd's last call is out, and settles afterwards.
Meanwhile each attempt stays leased by this process's heartbeat
(:meth:`LeaseKeeper.hold_attempt`). The pool has as many threads as the worker's concurrency,
so ``-c`` still bounds the vendor calls a process makes at once.

Exactly once is unchanged: each action still runs its guard script, calls the vendor only with
the token it got, and settles through finish_call.lua; a prepared request is sent only when the
grant asks for that very call (:meth:`PreparedCall.fits`), else it is built at the second. What
the order changes is the window of a crash: a process killed during a herd may have had replies
not yet settled; their attempts are issued again after the lease, as a call whose reply was
lost always was, and the vendor's "already recording" counts as done.
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
from schedules.vendor import CallOutcome, PreparedCall, prepare_call
from schedules.workpool import PriorityPool
from worker.redis import warm_connections

__all__ = [
    "POOL_THREADS",
    "Planned",
    "action_pool",
    "perform_batch",
    "perform_on_time",
    "pool_threads",
    "prepare",
    "set_pool_threads",
    "wait_until",
]

log = logging.getLogger(__name__)

# Threads of the process-wide action pool unless the worker sizes it (to its concurrency).
POOL_THREADS = 32
_pool: PriorityPool | None = None
_pool_size = POOL_THREADS
_pool_lock = threading.Lock()


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
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


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


def perform_on_time(ctx: Lifecycle, action_id: str) -> dict[str, Any]:
    """:func:`schedules.actions.perform`, prepared ahead and started at the due time."""
    plans = prepare(ctx, [action_id])
    _warm(ctx, plans)
    plan = plans[action_id]
    wait_until(ctx, plan.due_at)
    return perform(ctx, action_id, plan.call)


def perform_batch(ctx: Lifecycle, action_ids: list[str]) -> dict[str, Any]:
    """Carry out several claimed actions, prepared ahead, each started at its due time, calls
    before settlements; waits for all of them. Returns counts per verdict, the ids of actions
    that raised and each action's summary (no secrets).

    Each action is performed exactly as :func:`schedules.actions.perform` does alone, with its
    own lease and its own guards: one that raises is logged and left to its lease (issued
    again when it runs out), and changes nothing for the others. A batch delivered twice is
    harmless for the same reason a single action delivered twice is.
    """
    unique = list(dict.fromkeys(action_ids))
    plans = prepare(ctx, unique)
    _warm(ctx, plans)
    dues = [plan.due_at for plan in plans.values() if plan.due_at is not None]
    wait_until(ctx, min(dues) if dues else None)
    pool = action_pool()
    firing = [(a, pool.submit(_fire, ctx, a, plans[a], pool)) for a in unique]
    verdicts: Counter[str] = Counter()
    failed: list[str] = []
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


def _outcome(future: Future[Any]) -> dict[str, Any]:
    """An action's summary, through the futures of its call and of its settlement."""
    result = future.result()
    while isinstance(result, Future):
        result = result.result()
    return result  # type: ignore[no-any-return]


def _fire(
    ctx: Lifecycle, action_id: str, plan: Planned, pool: PriorityPool
) -> dict[str, Any] | Future[dict[str, Any]]:
    """At the due time: the guard script and the call. What follows the reply is queued on
    ``pool`` behind every action still waiting, and its future returned."""
    wait_until(ctx, plan.due_at)
    begun = begin(ctx, action_id, plan.room_id)
    grant = begun.grant
    if grant is None:
        return begun.summary
    held = ctx.leases.hold_attempt(grant.op_id, grant.token)
    try:
        sent_at = ctx.clock()
        outcome = call(ctx, grant, plan.call)
        return pool.submit(_settle, ctx, begun, grant, outcome, sent_at, held, urgent=False)
    except BaseException:
        ctx.leases.release_attempt(held)
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

"""Performing a claimed action: a booking's start/stop, or a room's vendor operation.

Exactly-once reasoning, in short (docs/lifecycle.md has the long form):
- a booking action is applied only while it is the booking's current ``next`` action, and
  applying it changes ``next`` in the same script, so a second delivery finds it stale;
- a vendor call is made only by the holder of the room operation's open attempt token, handed
  out atomically (apply_action.lua / begin_call.lua); a second delivery finds the attempt open
  and makes no call; once settled (finish_call.lua) the operation is gone;
- only an attempt whose lease ran out without a recorded reply (worker lost or call hung) is
  repeated, and "already recording"/"not recording" to that repeat counts as done.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from schedules.context import Lifecycle
from schedules.keys import parse_action
from schedules.outcomes import CallGrant
from schedules.vendor import call_vendor, user_data_text
from schedules.windows import backoff_s

__all__ = ["BATCH_THREADS", "perform", "perform_batch", "run_operation", "set_batch_threads"]

log = logging.getLogger(__name__)

# Threads of the process-wide pool that runs the actions of a batch (perform_batch). The worker
# sets it to its own concurrency (schedules/dispatch_step.py), so -c still bounds how many actions
# (and vendor calls) a process runs at once.
BATCH_THREADS = 32

_pool: ThreadPoolExecutor | None = None
_pool_size = BATCH_THREADS
_pool_lock = threading.Lock()


def set_batch_threads(threads: int) -> None:
    """Size the batch pool (before its first use; a pool already running is kept)."""
    global _pool_size
    with _pool_lock:
        _pool_size = max(1, int(threads))


def _batch_pool() -> ThreadPoolExecutor:
    """The process-wide bounded pool for batch actions, created on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_pool_size, thread_name_prefix="lifecycle-action")
        return _pool


def _forget_pool() -> None:
    # A forked child has none of the parent's threads: it builds its own pool on first use.
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def perform(ctx: Lifecycle, action_id: str) -> dict[str, Any]:
    """Carry out one claimed action; returns a JSON-ready summary (no secrets)."""
    ref = parse_action(action_id)
    token = ctx.new_token()
    summary: dict[str, Any] = {"action": action_id}
    holders: list[str] | None = None
    if ref.is_room_op:
        grant = ctx.store.begin_call(action_id, now=ctx.clock(), lease_s=ctx.lease_s, token=token)
        summary["verdict"] = grant.verdict
        if grant.verdict == "abandon":
            settled = _settle(ctx, grant, "abandon", "", "", None)
            follow = settled.pop("next_grant")
            summary["operations"] = [settled, *(run_operation(ctx, follow) if follow else [])]
            return summary
        if grant.verdict != "call":
            return summary
    else:
        result = ctx.store.apply_action(
            action_id, now=ctx.clock(), lease_s=ctx.lease_s, token=token
        )
        if result.verdict == "early":
            # Claimed ahead of time and delivered a little early: wait for the due time here
            # rather than let the lease run out (the vendor must never see an early start).
            wait = float(result.detail) - ctx.clock()
            if wait <= ctx.settings.dispatch_ahead_s + 1.0:
                ctx.sleep(max(wait, 0.0))
                result = ctx.store.apply_action(
                    action_id, now=ctx.clock(), lease_s=ctx.lease_s, token=token
                )
        summary["verdict"] = result.verdict
        if result.detail:
            summary["detail"] = result.detail
        if result.verdict == "joined":
            ctx.recording_log.add_bookings(result.detail, [ref.subject])
        if result.grant is None:
            return summary
        grant = result.grant
        # The operation was opened by this booking's arrival in an idle room: it is the holder.
        holders = [ref.subject]
    summary["operations"] = run_operation(ctx, grant, holders)
    return summary


def perform_batch(ctx: Lifecycle, action_ids: list[str]) -> dict[str, Any]:
    """Carry out several claimed actions concurrently (on the process-wide pool) and wait for
    all of them; returns counts per verdict, the ids of actions that raised and each action's
    summary (no secrets).

    Each action is performed exactly as :func:`perform` does alone, with its own lease and its
    own guards: one that raises is logged and left to its lease (issued again when it runs
    out), and changes nothing for the others. A batch delivered twice is harmless for the same
    reason a single action delivered twice is.
    """
    unique = list(dict.fromkeys(action_ids))
    pool = _batch_pool()
    futures: list[tuple[str, Future[dict[str, Any]]]] = [
        (action_id, pool.submit(perform, ctx, action_id)) for action_id in unique
    ]
    verdicts: Counter[str] = Counter()
    failed: list[str] = []
    summaries: dict[str, dict[str, Any]] = {}
    for action_id, future in futures:
        try:
            summary = future.result()
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


def run_operation(
    ctx: Lifecycle, grant: CallGrant, holders: list[str] | None = None
) -> list[dict[str, Any]]:
    """Call the vendor for ``grant`` and settle it; follow on while the room needs another
    operation (a holder arrived while it stopped, or the last one left while it started).

    ``holders``: the bookings known to hold the room when the caller knows them (saves a read);
    any others confirmed with the start are added to the recording log afterwards.
    """
    done: list[dict[str, Any]] = []
    current: CallGrant | None = grant
    known = list(holders or [])
    while current is not None:
        room_id = current.room_id
        params = current.params or {}
        with ctx.leases.calling(current.op_id, current.token):
            outcome = call_vendor(ctx.client, current.kind, room_id, params, ctx.results)
        now = ctx.clock()
        logged: set[str] = set()
        # A start of unknown outcome counts as possibly recording whatever the repeat answers
        # (finish_call.lua): its session is logged like a confirmed one, so its file finds it.
        possibly = current.kind == "start" and current.uncertain and outcome.outcome == "fail"
        # A stop's failure is final too (finish_call.lua): its session must not stay open, or
        # the room's next recording would be logged into it.
        final_stop = current.kind == "stop" and outcome.outcome == "fail"
        if outcome.done or possibly or final_stop:
            # Log before settling: if this process dies in between, the repeat is settled by
            # whoever takes over, and the log calls are idempotent. A reply that comes after
            # the attempt was taken over is not logged (the new owner logs): the log scripts
            # write only while this attempt's token is still the room's, checked in one step.
            guard = (ctx.keys.room(room_id), "call_token", current.token)
            if current.kind == "start":
                # Dated by the vendor's side: it may have started at the first attempt's send.
                sent = ctx.redis.hget(ctx.keys.room(room_id), "op_started_at")
                session = ctx.recording_log.started(
                    room_id,
                    now,
                    sorted(known),
                    user_data_text(params.get("user_data")),
                    guard=guard,
                    sent_at=float(sent) if sent else None,
                    uncertain=possibly,
                )
                if session is not None:
                    logged = set(known)
            else:
                confirmed = outcome.outcome == "ok"
                ctx.recording_log.stopped(room_id, now, guard=guard, confirmed=confirmed)
        retry_at = None
        if outcome.outcome == "retry":
            retry_at = now + backoff_s(
                max(current.attempt, 1),
                ctx.settings.retry_backoff_base_s,
                ctx.settings.retry_backoff_max_s,
                ctx.rng.random(),
            )
        # A lost reply (timeout): the vendor may have applied the call; the repeat is uncertain.
        reported = "lost" if outcome.outcome == "retry" and outcome.reply_lost else outcome.outcome
        settled = _settle(ctx, current, reported, outcome.code, outcome.message, retry_at)
        settled["reply_lost"] = outcome.reply_lost
        done.append(settled)
        if settled["verdict"] == "confirmed" and current.kind == "start":
            joined = set(settled["bookings"]) - logged
            if joined:
                ctx.recording_log.add_bookings(room_id, sorted(joined))
        if settled["verdict"] == "stale" and current.kind == "start" and outcome.outcome == "ok":
            # The vendor started the room for an attempt that had been given up (its lease ran
            # out). finish_call.lua opened a stop when the room has been released since.
            stopping = settled["next_grant"] is not None
            log.warning(
                "late ok to %s (start of room %s) after its attempt was taken over; %s",
                current.op_id,
                room_id,
                "no booking holds the room: stopping it"
                if stopping
                else "the room is held or mid-operation: left to it",
            )
        log_level = logging.INFO if outcome.done else logging.WARNING
        log.log(
            log_level,
            "%s %s attempt %d: %s %s -> %s",
            current.op_id,
            current.kind,
            current.attempt,
            outcome.outcome,
            outcome.code,
            settled["verdict"],
        )
        current = settled.pop("next_grant")
        known = []
    return done


def _settle(
    ctx: Lifecycle,
    grant: CallGrant,
    outcome: str,
    code: str,
    message: str,
    retry_at: float | None,
) -> dict[str, Any]:
    settlement = ctx.store.finish_call(
        grant,
        now=ctx.clock(),
        outcome=outcome,
        code=code,
        message=message,
        retry_at=retry_at,
        lease_s=ctx.lease_s,
        next_token=ctx.new_token(),
        stop_retry_s=ctx.settings.stop_retry_s,
    )
    return {
        "op": grant.op_id,
        "kind": grant.kind,
        "attempt": grant.attempt,
        "outcome": outcome,
        "code": code,
        "verdict": settlement.verdict,
        "bookings": settlement.bookings,
        "retry_at": settlement.retry_at,
        "next_grant": settlement.next_grant,
    }

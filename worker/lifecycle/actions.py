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
from typing import Any

from schedules.keys import parse_action
from schedules.store import CallGrant
from schedules.windows import backoff_s
from worker.lifecycle.context import Lifecycle
from worker.lifecycle.vendor import call_vendor, user_data_text

__all__ = ["perform", "run_operation"]

log = logging.getLogger(__name__)


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
        outcome = call_vendor(ctx.client, current.kind, room_id, params)
        now = ctx.clock()
        logged: set[str] = set()
        if outcome.done and _still_owner(ctx, current):
            # Log before settling: if this process dies in between, the repeat is settled by
            # whoever takes over, and the log calls are idempotent. A reply that comes after
            # the attempt was taken over is not logged (the new owner logs).
            if current.kind == "start":
                logged = set(known)
                ctx.recording_log.started(
                    room_id, now, sorted(logged), user_data_text(params.get("user_data"))
                )
            else:
                ctx.recording_log.stopped(room_id, now)
        retry_at = None
        if outcome.outcome == "retry":
            retry_at = now + backoff_s(
                max(current.attempt, 1),
                ctx.settings.retry_backoff_base_s,
                ctx.settings.retry_backoff_max_s,
                ctx.rng.random(),
            )
        settled = _settle(ctx, current, outcome.outcome, outcome.code, outcome.message, retry_at)
        settled["reply_lost"] = outcome.reply_lost
        done.append(settled)
        if settled["verdict"] == "confirmed" and current.kind == "start":
            joined = set(settled["bookings"]) - logged
            if joined:
                ctx.recording_log.add_bookings(room_id, sorted(joined))
        if settled["verdict"] == "stale" and current.kind == "start" and outcome.outcome == "ok":
            # The vendor started the room for an attempt that had been given up (its lease ran
            # out). If the room was released since, the vendor may record it with no holder.
            log.warning(
                "late ok to %s (start of room %s) after its attempt was taken over; "
                "check the room at the vendor if no booking holds it",
                current.op_id,
                room_id,
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


def _still_owner(ctx: Lifecycle, grant: CallGrant) -> bool:
    return ctx.redis.hget(ctx.keys.room(grant.room_id), "call_token") == grant.token


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

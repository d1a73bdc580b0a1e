"""Performing a claimed action: a booking's start/stop, or a room's vendor operation.

Exactly-once reasoning, in short (docs/lifecycle.md has the long form):
- a booking action is applied only while it is the booking's current ``next`` action, and
  applying it changes ``next`` in the same script, so a second delivery finds it stale;
- a vendor call is made only by the holder of the room operation's open attempt token, handed
  out atomically (apply_action.lua / begin_call.lua); a second delivery finds the attempt open
  and makes no call; once settled (finish_call.lua) the operation is gone;
- only an attempt whose lease ran out without a recorded reply (worker lost or call hung) is
  repeated, and "already recording"/"not recording" to that repeat counts as done; a reply
  that came but was not settled before the worker died is noted in the room hash (:func:`call`)
  and settled by the attempt that takes over, without a second call.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from schedules.context import Lifecycle
from schedules.keys import parse_action
from schedules.outcomes import CallGrant
from schedules.vendor import CallOutcome, PreparedCall, call_vendor, user_data_text
from schedules.windows import backoff_s

__all__ = [
    "REPLY_FIELD",
    "Begun",
    "begin",
    "call",
    "conclude",
    "noted_reply",
    "perform",
    "run_operation",
]

log = logging.getLogger(__name__)

#: Field of the room hash holding the last vendor reply: [op_id, outcome, code, message].
REPLY_FIELD = "reply"


@dataclass
class Begun:
    """An action past its guard script: its summary so far and, when this process must call
    the vendor, the grant and the bookings known to hold the room (``holders``)."""

    summary: dict[str, Any]
    grant: CallGrant | None = None
    holders: list[str] | None = None
    #: The heartbeat's key of the granted attempt while an armed call waits (firing.py).
    held: str | None = None
    #: Not armed (its room was mid-operation): to be run at its due time instead.
    deferred: bool = False


def begin(
    ctx: Lifecycle, action_id: str, room_hint: str | None = None, as_of: float | None = None
) -> Begun:
    """Run a claimed action's guard script (apply_action.lua, or begin_call.lua for a room
    operation issued again): what happens without a vendor call happens here; a call this
    process must make comes back as the grant. ``room_hint``: the booking's room as read
    before, to save a read (see :meth:`LifecycleStore.apply_action`).

    ``as_of``: a booking action's due time, when its guard runs shortly before it (it is
    *armed*, schedules/firing.py): the script decides as of that time, and the caller must not
    send a granted call before it. An action the script does not arm (its room is
    mid-operation, or it is due later than ``as_of``) comes back ``deferred``, nothing done:
    the caller runs it at its due time with :func:`perform`."""
    ref = parse_action(action_id)
    token = ctx.new_token()
    summary: dict[str, Any] = {"action": action_id}
    if ref.is_room_op:
        grant = ctx.store.begin_call(action_id, now=ctx.clock(), lease_s=ctx.lease_s, token=token)
        summary["verdict"] = grant.verdict
        if grant.verdict == "abandon":
            settled = _settle(ctx, grant, "abandon", "", "", None)
            follow = settled.pop("next_grant")
            summary["operations"] = [settled, *(run_operation(ctx, follow) if follow else [])]
            return Begun(summary)
        return Begun(summary, grant if grant.verdict == "call" else None)
    now = ctx.clock() if as_of is None else max(ctx.clock(), as_of)
    result = ctx.store.apply_action(
        action_id,
        now=now,
        lease_s=ctx.lease_s,
        token=token,
        room_hint=room_hint,
        armed=as_of is not None,
    )
    if result.verdict == "early" and as_of is not None:
        # Not armed: run at its due time, as without arming (the caller's business).
        return Begun({"action": action_id, "verdict": "early"}, deferred=True)
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
    # An operation opened by this booking's arrival in an idle room: the booking is its holder.
    return Begun(summary, result.grant, [ref.subject] if result.grant is not None else None)


def perform(ctx: Lifecycle, action_id: str, prepared: PreparedCall | None = None) -> dict[str, Any]:
    """Carry out one claimed action; returns a JSON-ready summary (no secrets). ``prepared``:
    its vendor call built ahead (used when the grant asks for exactly that call)."""
    begun = begin(ctx, action_id)
    if begun.grant is not None:
        begun.summary["operations"] = run_operation(ctx, begun.grant, begun.holders, prepared)
    return begun.summary


def run_operation(
    ctx: Lifecycle,
    grant: CallGrant,
    holders: list[str] | None = None,
    prepared: PreparedCall | None = None,
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
        with ctx.leases.calling(current.op_id, current.token):
            sent_at = ctx.clock()
            outcome = call(ctx, current, prepared)
        settled = conclude(ctx, current, outcome, known, sent_at)
        done.append(settled)
        current = settled.pop("next_grant")
        known, prepared = [], None
    return done


def call(ctx: Lifecycle, grant: CallGrant, prepared: PreparedCall | None = None) -> CallOutcome:
    """The vendor call of ``grant`` (the caller holds its attempt's lease meanwhile).

    A herd settles its replies after all its calls (schedules/firing.py), so a worker that dies
    in between holds answered calls nobody settled. Each reply is therefore noted in the room
    hash the moment it comes (queued for the process's note writer, schedules/notes.py, so the
    thread goes on to its next call at once); the attempt that takes over the operation
    settles a noted reply instead of calling the vendor again. Only calls still in flight (or
    whose note was still queued) at the death are repeated."""
    room_key = ctx.keys.room(grant.room_id)
    if grant.attempt > 1:
        noted = noted_reply(ctx.redis.hget(room_key, REPLY_FIELD), grant.op_id)
        if noted is not None:
            return noted
    outcome = call_vendor(
        ctx.client, grant.kind, grant.room_id, grant.params or {}, ctx.results, prepared
    )
    if outcome.outcome != "retry":
        note = [grant.op_id, outcome.outcome, outcome.code, outcome.message]
        ctx.reply_notes.note(room_key, REPLY_FIELD, json.dumps(note, ensure_ascii=False))
    return outcome


def noted_reply(raw: str | bytes | None, op_id: str) -> CallOutcome | None:
    """The reply noted for operation ``op_id``, or None (none noted, or another operation's)."""
    if not raw:
        return None
    try:
        noted_op, outcome, code, message = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if noted_op != op_id or outcome not in ("ok", "already", "fail"):
        return None
    return CallOutcome(str(outcome), str(code), str(message))


def conclude(
    ctx: Lifecycle,
    grant: CallGrant,
    outcome: CallOutcome,
    known: list[str] | None = None,
    sent_at: float | None = None,
) -> dict[str, Any]:
    """After the vendor answered ``grant``: log the session and settle the room
    (finish_call.lua). Returns the settled operation, whose ``next_grant`` (or None) is the
    room's next operation for this process to call."""
    current = grant
    room_id = current.room_id
    params = current.params or {}
    known = list(known or [])
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
    if sent_at is not None:
        settled["sent_at"] = sent_at
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
    return settled


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

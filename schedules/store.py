"""Windows and actions in Redis: the Python face of the lifecycle Lua scripts.

Every state change goes through one script call, so it is atomic. Every method takes ``now``
(epoch seconds from the caller's injected clock); no script reads Redis ``TIME``. All
processes of a deployment therefore need synchronised clocks (NTP): a skew of d seconds moves an
action by at most d and shortens or lengthens a lease by d.

No script builds a key name: every key it touches comes in KEYS (so all of them can be checked
to share the deployment's hash tag, one Redis Cluster slot). Some keys depend on what Redis holds
(the room a booking is in, the bookings holding a room); for those the store reads what it needs
first, passes the keys, and the script checks that what it finds is what it was given. If not
(it changed in between), the script writes nothing and answers ``moved``, and the store reads
again and calls again, at most :data:`MOVED_TRIES` times (a change between a read and the
script's run takes another process's script in that instant; several in a row do not happen
unless something is wrong). Atomicity is unchanged: each state change is still one script run.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from schedules.keys import LifecycleKeys, parse_action
from schedules.layout import num_text, params_text, raw_kwargs
from schedules.outcomes import ActionResult, CallGrant, Claim, EventResult, Settlement
from worker.redis import ScriptSet, scripts_for

__all__ = [
    "DEFAULT_HISTORY_MAX",
    "DEFAULT_RETENTION_S",
    "MOVED",
    "MOVED_TRIES",
    "KeysMoved",
    "LifecycleStore",
]

DEFAULT_RETENTION_S = 30 * 24 * 3600
DEFAULT_HISTORY_MAX = 200
MOVED_TRIES = 5
MOVED = "moved"


class KeysMoved(RuntimeError):
    """A script answered ``moved`` :data:`MOVED_TRIES` times in a row: the keys read for it kept
    changing before it ran."""


def _num(value: float) -> str:
    return num_text(value)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class LifecycleStore:
    """Bookings, rooms, due and in-flight actions under one key prefix."""

    def __init__(
        self,
        client: redis.Redis,
        keys: LifecycleKeys,
        *,
        retention_s: float = DEFAULT_RETENTION_S,
        history_max: int = DEFAULT_HISTORY_MAX,
        scripts: ScriptSet | None = None,
    ) -> None:
        self.r = client
        self.keys = keys
        self.retention_s = int(retention_s)
        self.history_max = history_max
        self.scripts = scripts or scripts_for(client, "schedules.lua")

    # -- booking events ----------------------------------------------------------------------

    def apply_event(
        self,
        mode: str,
        booking_id: str,
        *,
        now: float,
        updated_at: float | None = None,
        room_id: str = "",
        start_at: float | None = None,
        end_at: float | None = None,
        lead_s: float = 0.0,
        tail_s: float = 0.0,
        params: dict[str, Any] | None = None,
        request: dict[str, Any] | None = None,
        source: str = "",
    ) -> EventResult:
        """Apply schedule/start (window given) or cancel/stop to one booking, atomically.

        ``request`` is a schedule's or start's event as received, ``{"task", "kwargs"}``: only
        the keyword arguments the stored fields do not give back are kept
        (:func:`schedules.layout.raw_kwargs`), for replays and messages; without ``kwargs`` the
        request is rebuilt from the stored fields alone.
        """
        if mode not in ("schedule", "start", "cancel", "stop"):
            raise ValueError(f"unknown event mode {mode!r}")
        windowed = mode in ("schedule", "start")
        if windowed and (start_at is None or end_at is None or not room_id):
            raise ValueError(f"{mode} needs room_id, start_at and end_at")
        k = self.keys
        raw: dict[str, str] = {}
        received = (request or {}).get("kwargs")
        if windowed and received is not None:
            raw = raw_kwargs(
                mode,
                received,
                booking_id=booking_id,
                room_id=room_id,
                start_at=start_at,
                end_at=end_at,
                updated_at=updated_at,
                params=params or {},
            )
        argv = [
            mode,
            booking_id,
            _num(now),
            "" if updated_at is None else _num(updated_at),
            room_id if windowed else "",
            _num(start_at) if windowed else "",
            _num(end_at) if windowed else "",
            _num(start_at - lead_s) if windowed else "",  # type: ignore[operator]
            _num(end_at + tail_s) if windowed else "",  # type: ignore[operator]
            params_text(params or {}),
            _json(raw),
            self.retention_s,
            self.history_max,
            source,
        ]
        keys = [
            k.booking(booking_id),
            k.bhist(booking_id),
            k.due,
            k.inflight,
            k.active,
            k.outbox,
            k.counts,
            k.ended,
        ]
        verdict, state, nxt, nxt_at, detail = self.scripts.apply_event(keys=keys, args=argv)
        return EventResult(verdict, state, nxt, float(nxt_at) if nxt_at else None, detail)

    # -- actions -------------------------------------------------------------------------------

    def claim_due(self, *, now: float, lease_s: float, limit: int, ahead_s: float = 0.0) -> Claim:
        """Lease up to ``limit`` actions due by ``now + ahead_s`` (or whose lease ran out) to the
        caller (claim_due.lua). The hand-over lease ends ``lease_s`` from now, never before the
        due time; the worker that receives the action renews it (renew_leases.lua).
        """
        raw = self.scripts.claim_due(
            keys=[self.keys.due, self.keys.inflight],
            args=[_num(now), _num(now + ahead_s), _num(lease_s), limit],
        )
        reissued, next_due, next_lease, *flat = raw
        pairs = [(flat[i], float(flat[i + 1])) for i in range(0, len(flat), 2)]
        return Claim(
            pairs,
            int(reissued),
            float(next_due) if next_due else None,
            float(next_lease) if next_lease else None,
        )

    def apply_action(
        self,
        action_id: str,
        *,
        now: float,
        lease_s: float,
        token: str,
        room_hint: str | None = None,
        armed: bool = False,
    ) -> ActionResult:
        """Apply a claimed booking action (apply_action.lua); see the script for verdicts.

        ``room_hint``: the booking's room as read before (a herd's preparation), tried first
        to save a read at the due second; the script answers ``moved`` if it changed since.
        ``armed``: run ahead of the due time as of it (``now`` is the due time); the script
        answers ``early`` for an action whose room is mid-operation."""
        ref = parse_action(action_id)
        if ref.is_room_op:
            raise ValueError(f"{action_id} is a room operation; use begin_call")
        k = self.keys
        booking_key = k.booking(ref.subject)
        room_field = "rm" if ref.kind == "start" else "hr"
        argv = [action_id, _num(now), _num(lease_s), token, self.retention_s, self.history_max]
        for _ in range(MOVED_TRIES):
            if room_hint is not None:
                room_id, room_hint = room_hint, None
            else:
                room_id = self.r.hget(booking_key, room_field) or ""
            keys = [
                booking_key,
                k.bhist(ref.subject),
                k.due,
                k.inflight,
                k.active,
                k.dl_entries,
                k.dl_index,
                k.dl_seq,
                k.room(room_id),
                k.rhold(room_id),
                k.rrel(room_id),
                k.rhist(room_id),
                k.outbox,
                k.counts,
                k.ended,
            ]
            raw = self.scripts.apply_action(keys=keys, args=[*argv, room_id, "1" if armed else ""])
            if raw[0] != MOVED:
                break
        else:
            raise KeysMoved(f"{action_id}: the booking's room kept changing")
        verdict = raw[0]
        if verdict == "call":
            _, op_id, kind, params, attempt, uncertain = raw
            grant = CallGrant(
                "call", op_id, kind, json.loads(params), int(attempt), bool(uncertain), token
            )
            return ActionResult("call", kind, grant)
        return ActionResult(verdict, str(raw[1]) if len(raw) > 1 else "")

    def renew_leases(
        self,
        *,
        now: float,
        lease_s: float,
        actions: list[str],
        attempts: list[tuple[str, str]],
    ) -> tuple[list[bool], list[bool]]:
        """Heartbeat (renew_leases.lua): push the leases of held actions and of open call
        attempts (op_id, call_token) to ``now + lease_s``; says which of each are still held."""
        if not actions and not attempts:
            return [], []
        k = self.keys
        keys = [k.inflight, *(k.room(parse_action(op).subject) for op, _ in attempts)]
        argv: list[Any] = [_num(now), _num(lease_s), len(actions), *actions]
        for op_id, token in attempts:
            argv += [op_id, token]
        raw = [bool(int(x)) for x in self.scripts.renew_leases(keys=keys, args=argv)]
        return raw[: len(actions)], raw[len(actions) :]

    def begin_call(self, op_id: str, *, now: float, lease_s: float, token: str) -> CallGrant:
        """Open a vendor call attempt for a re-issued room operation (begin_call.lua)."""
        room_id = parse_action(op_id).subject
        k = self.keys
        raw = self.scripts.begin_call(
            keys=[k.room(room_id), k.rhold(room_id), k.inflight, k.due, k.rhist(room_id)],
            args=[op_id, _num(now), _num(lease_s), token, self.history_max, self.retention_s],
        )
        verdict = raw[0]
        if verdict in ("call", "abandon"):
            _, kind, params, attempt, uncertain = raw
            return CallGrant(
                verdict,
                op_id,
                kind,
                json.loads(params),
                int(attempt),
                bool(uncertain),
                token if verdict == "call" else "",
            )
        return CallGrant(verdict, op_id)

    def finish_call(
        self,
        grant: CallGrant,
        *,
        now: float,
        outcome: str,
        code: str = "",
        message: str = "",
        retry_at: float | None = None,
        lease_s: float,
        next_token: str,
        stop_retry_s: float,
    ) -> Settlement:
        """Record a call outcome (ok, already, retry, lost, fail, abandon) (finish_call.lua)."""
        if outcome not in ("ok", "already", "retry", "lost", "fail", "abandon"):
            raise ValueError(f"unknown outcome {outcome!r}")
        room_id = grant.room_id
        k = self.keys
        keys = [
            k.room(room_id),
            k.rhold(room_id),
            k.rrel(room_id),
            k.rhist(room_id),
            k.inflight,
            k.due,
            k.active,
            k.rooms,
            k.dl_entries,
            k.dl_index,
            k.dl_seq,
            k.outbox,
            k.counts,
            k.ended,
        ]
        argv = [
            grant.op_id,
            grant.token,
            _num(now),
            outcome,
            code,
            message,
            _num(retry_at if retry_at is not None else now),
            _num(lease_s),
            next_token,
            self.retention_s,
            _num(stop_retry_s),
            self.history_max,
            grant.kind,
            json.dumps(grant.params or {}),
        ]
        for _ in range(MOVED_TRIES):
            pipe = self.r.pipeline(transaction=False)
            pipe.smembers(k.rhold(room_id))
            pipe.smembers(k.rrel(room_id))
            holding, released = pipe.execute()
            ids = sorted(set(holding) | set(released))
            per_booking = [key for i in ids for key in (k.booking(i), k.bhist(i))]
            raw = self.scripts.finish_call(keys=[*keys, *per_booking], args=[*argv, *ids])
            if raw[0] != MOVED:
                break
        else:
            raise KeysMoved(f"{grant.op_id}: the room's bookings kept changing")
        verdict, kind, bookings, next_op, next_kind, params, _ = raw
        decoded = json.loads(bookings)
        next_grant = None
        if next_op:
            next_grant = CallGrant(
                "call", next_op, next_kind, json.loads(params), 1, False, next_token
            )
        return Settlement(
            verdict,
            kind,
            list(decoded) if isinstance(decoded, list) else [],
            next_grant,
            retry_at if verdict == "retry" else None,
        )

"""Moving bookings stored by the earlier layout (``lc:booking:<id>`` hash with long fields, the
event as received in ``request``, ``lc:bhist:<id>`` history) to the compact one
(``schedules/layout.py``). Run once after upgrading, with the lifecycle workers stopped:
``anyrtc-recorder migrate-bookings``.

Each booking moves in one MULTI/EXEC transaction watched on its old and new keys (a booking that
changes meanwhile is tried again on the next run), so a crash leaves every booking in one layout
or the other. Its pending action keeps its id (``start:<id>:<seq>``), so ``due``, ``inflight``,
``active`` and the rooms need no change. A booking that already has a hash in the new layout
(scheduled again after the upgrade) keeps it; its old keys are left for the operator.

The same transaction counts a moved booking in the per-state counts (``schedules/counts.py``),
and puts a finished one in ``ended`` by its remaining time to live, so the counts stay exact
without a rebuild.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from schedules.counts import ENDED_STATES
from schedules.keys import NAMESPACE, LifecycleKeys, hash_tag
from schedules.layout import FIELDS, STATE_FIELD, num_text, params_text, raw_kwargs

__all__ = ["MigrationReport", "compact_fields", "migrate_bookings", "old_booking_keys"]

_OLD_BOOKING = "booking:"
_OLD_HISTORY = "bhist:"
_TIMES = ("start_at", "end_at", "start_due", "stop_due", "updated_at")
#: Old fields with the same content under a short name (times are rewritten by num_text).
_RENAMED = tuple(
    name
    for name in FIELDS
    if name not in ("params", "next_kind", "task", "first_source", "seq", *_TIMES)
)


@dataclass
class MigrationReport:
    """What one run did: booking ids moved, and the ones left as they were (with why)."""

    moved: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"moved": len(self.moved), "skipped": self.skipped}


def old_booking_keys(client: redis.Redis, prefix: str) -> Iterator[tuple[str, str]]:
    """(booking id, old hash key) of every booking still in the earlier layout."""
    base = f"{hash_tag(prefix)}:{NAMESPACE}:{_OLD_BOOKING}"
    for key in client.scan_iter(match=base.replace("[", r"\[") + "*", count=1000):
        yield key[len(base) :], key


def compact_fields(booking_id: str, old: dict[str, str]) -> dict[str, str]:
    """The compact hash of a booking stored as ``old`` (the earlier layout's fields)."""
    new = {FIELDS[name]: old[name] for name in _RENAMED if old.get(name)}
    for name in _TIMES:
        if old.get(name):
            new[FIELDS[name]] = num_text(float(old[name]))
    new["sq"] = old.get("seq") or "0"
    if old.get("next"):
        new["nx"] = old["next"].split(":", 1)[0]
    params = json.loads(old.get("params") or "{}")
    if params_text(params):
        new["pa"] = params_text(params)
    request = json.loads(old.get("request") or "{}")
    kind = "start" if request.get("task") == "recordings.start" else "schedule"
    if kind == "start":
        new["tk"] = "start"
    if request:
        raw = raw_kwargs(
            kind,
            request.get("kwargs") or {},
            booking_id=booking_id,
            room_id=old.get("room_id", ""),
            start_at=float(old["start_at"]) if old.get("start_at") else None,
            end_at=float(old["end_at"]) if old.get("end_at") else None,
            updated_at=float(old["updated_at"]) if old.get("updated_at") else None,
            params=params,
        )
        new.update({f"k.{name}": text for name, text in raw.items()})
    return new


def _move(
    pipe: Any, keys: LifecycleKeys, booking_id: str, old_key: str, now: float
) -> str | None:
    """Move one booking inside ``pipe`` (WATCHing its keys); None when moved, else why not."""
    old_history = old_key[: -len(_OLD_BOOKING + booking_id)] + _OLD_HISTORY + booking_id
    new_key, new_history = keys.booking(booking_id), keys.bhist(booking_id)
    pipe.watch(old_key, old_history, new_key, new_history)
    if pipe.exists(new_key, new_history):
        pipe.unwatch()
        return "already stored in the new layout"
    old = pipe.hgetall(old_key)
    if not old:
        pipe.unwatch()
        return "gone"
    ttl_ms = pipe.pttl(old_key)
    has_history = pipe.exists(old_history)
    fields = compact_fields(booking_id, old)
    state = fields.get(STATE_FIELD, "")
    pipe.multi()
    pipe.hset(new_key, mapping=fields)
    if ttl_ms > 0:
        pipe.pexpire(new_key, ttl_ms)
    if state:
        pipe.hincrby(keys.counts, state, 1)
        if state in ENDED_STATES and ttl_ms > 0:
            pipe.zadd(keys.ended, {f"{state}:{booking_id}": now + ttl_ms / 1000})
    pipe.delete(old_key)
    if has_history:
        pipe.rename(old_history, new_history)  # keeps the list's TTL
    pipe.execute()
    return None


def migrate_bookings(
    client: redis.Redis, prefix: str, *, clock: Callable[[], float] = time.time
) -> MigrationReport:
    """Move every booking of the earlier layout under ``prefix`` to the compact one."""
    keys = LifecycleKeys(prefix)
    report = MigrationReport()
    for booking_id, old_key in old_booking_keys(client, prefix):
        with client.pipeline(transaction=True) as pipe:
            try:
                why = _move(pipe, keys, booking_id, old_key, clock())
            except redis.WatchError:
                why = "changed while moving; run again"
        if why is None:
            report.moved.append(booking_id)
        else:
            report.skipped[booking_id] = why
    return report

"""How a booking is stored: the short fields of its hash, and what is rebuilt from them.

A million pending bookings must fit in about 1 GB of a Redis with default settings. A hash stays
a compact listpack only while every value is at most ``hash-max-listpack-value`` (64) bytes and
it has at most 512 fields; past that it becomes a hash table, about four times larger. So the
booking hash (``lc:b:<booking_id>``) keeps short field names, writes no empty field, repeats no
id (the booking id is the key's; the pending action id is rebuilt from ``nx`` and ``sq``), and
does not keep the event as received: the request a dead letter or a ``booking.v1`` message
shows is rebuilt from the window and params (``booking_request`` in ``worker/lua/lib.lua``),
with only the keyword arguments received in another form kept verbatim (:func:`raw_kwargs`).
A new booking has no history list: its first entry is written by its next transition
(``first_note`` in lib.lua) and built here for a read before then (:func:`first_entry`).

=========  ==============================================================================
field      content
=========  ==============================================================================
``st``     state
``rm``     room id
``sa/ea``  start_at / end_at (epoch s)
``sd/ed``  start_due / stop_due: when the start and the stop are due (epoch s)
``pa``     params: JSON of user_data, name_rule, path, room_type (nulls left out)
``ua``     updated_at of the last event applied (epoch s)
``sq``     action counter; ``nx`` the pending action's kind (start, stop), ``na`` its due time
``en``     ending: what the pending stop does (cancel, stop, restart)
``hr``     held room; ``fi`` the state after the room's stop; ``rc`` "1" once recorded
``rs``     reason of the last transition; ``cd``/``ms`` the last failure's code and message
``tr``     what was tried before failing (JSON); ``tl`` transitions told downstream
``ra/ro``  when the recording actually started / stopped (epoch s)
``ca/ch``  created_at / changed_at (epoch s)
``tk``     ``start`` when the last window came from ``recordings.start`` (else schedule)
``k.<n>``  keyword argument ``n`` as received (JSON), where the stored fields do not give it
``h0``     present until the first history entry is written: the creating event's source
           (``-``: the task's own name)
=========  ==============================================================================
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "FIELDS",
    "PARAM_NAMES",
    "REQUEST_KWARGS",
    "STATE_FIELD",
    "first_entry",
    "next_action",
    "num_text",
    "params_text",
    "raw_kwargs",
]

STATE_FIELD = "st"

#: Long name (as :class:`schedules.state.BookingView` and the docs say it) -> stored field.
FIELDS = {
    "state": "st",
    "room_id": "rm",
    "start_at": "sa",
    "end_at": "ea",
    "start_due": "sd",
    "stop_due": "ed",
    "params": "pa",
    "updated_at": "ua",
    "seq": "sq",
    "next_kind": "nx",
    "next_at": "na",
    "ending": "en",
    "held_room": "hr",
    "final": "fi",
    "recorded": "rc",
    "reason": "rs",
    "code": "cd",
    "message": "ms",
    "tried": "tr",
    "told": "tl",
    "rec_started_at": "ra",
    "rec_stopped_at": "ro",
    "created_at": "ca",
    "changed_at": "ch",
    "task": "tk",
    "first_source": "h0",
}

PARAM_NAMES = ("user_data", "name_rule", "path", "room_type")

#: The keyword arguments of the tasks a booking's window comes from, by ``tk`` (the contract's
#: order; ``REQUEST_KWARGS`` in lib.lua is the same, a unit test holds both to the contract).
REQUEST_KWARGS = {
    "schedule": (
        "booking_id",
        "room_id",
        "start_at",
        "end_at",
        "user_data",
        "name_rule",
        "path",
        "room_type",
        "updated_at",
    ),
    "start": ("room_id", "booking_id", "user_data", "name_rule", "path", "room_type"),
}

#: Lua's cjson writes numbers with 14 significant digits.
_CJSON_DIGITS = 14


def num_text(value: float) -> str:
    """A time as stored: a whole number without ``.0`` (a listpack keeps it as an integer)."""
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def params_text(params: Mapping[str, Any]) -> str:
    """The ``pa`` field: the params that are set, as compact JSON ("" when none is)."""
    present = {k: v for k, v in params.items() if v is not None}
    if not present:
        return ""
    return json.dumps(present, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _cjson_safe(value: Any) -> bool:
    """True when Lua's cjson decodes and encodes ``value`` back to an equal value (it turns an
    empty list into an object and keeps 14 significant digits)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, int):
        return abs(value) < 10**_CJSON_DIGITS
    if isinstance(value, float):
        return math.isfinite(value) and float(f"{value:.{_CJSON_DIGITS}g}") == value
    if isinstance(value, list):
        return bool(value) and all(_cjson_safe(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _cjson_safe(v) for k, v in value.items())
    return False


def _same(received: Any, stored: Any) -> bool:
    if isinstance(received, bool) or isinstance(stored, bool):
        return received is stored
    if isinstance(received, int | float) and isinstance(stored, int | float):
        return float(received) == float(stored)
    return bool(received == stored) and type(received) is type(stored)


def raw_kwargs(
    task: str,
    kwargs: Mapping[str, Any],
    *,
    booking_id: str,
    room_id: str,
    start_at: float | None,
    end_at: float | None,
    updated_at: float | None,
    params: Mapping[str, Any],
) -> dict[str, str]:
    """The keyword arguments of an event (``task``: schedule or start) that the stored fields do
    not give back as received, name -> JSON text (stored as ``k.<name>``)."""
    derived: dict[str, Any] = {
        "booking_id": booking_id,
        "room_id": room_id,
        "start_at": float(num_text(start_at)) if start_at is not None else None,
        "end_at": float(num_text(end_at)) if end_at is not None else None,
        "updated_at": float(num_text(updated_at)) if updated_at is not None else None,
        **{name: params.get(name) for name in PARAM_NAMES},
    }
    names = REQUEST_KWARGS[task]
    raw: dict[str, str] = {}
    for name, value in kwargs.items():
        if name in names and _same(value, derived[name]) and _cjson_safe(value):
            continue
        raw[name] = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for name in names:
        # Left out by the sender: kept as null, as the task's default would be.
        if name not in kwargs and derived[name] is not None:
            raw[name] = "null"
    return raw


def next_action(data: Mapping[str, str], booking_id: str) -> str:
    """The id of the booking's pending action, ``""`` when none."""
    kind = data.get("nx", "")
    return f"{kind}:{booking_id}:{data.get('sq', '0')}" if kind else ""


def _number(text: str | None) -> float | int | None:
    if text in (None, ""):
        return None
    number = float(text)  # type: ignore[arg-type]
    return int(number) if number.is_integer() else number


def first_entry(data: Mapping[str, str], booking_id: str) -> dict[str, Any] | None:
    """The deferred first history entry of a booking whose hash is ``data`` (None once written);
    the same entry ``first_entry`` in lib.lua writes."""
    if "h0" not in data:
        return None
    kind = data.get("tk") or "schedule"
    source = data["h0"]
    entry: dict[str, Any] = {
        "event": kind,
        "source": f"recordings.{kind}" if source == "-" else source,
        "verdict": "applied",
        "from": "",
        "state": "scheduled",
        "next": f"start:{booking_id}:{data.get('sq', '')}",
        "window": [_number(data.get("sa")), _number(data.get("ea"))],
        "room_id": data.get("rm", ""),
        "detail": "start pending",
        "at": _number(data.get("ca")),
    }
    if data.get("ua"):
        entry["updated_at"] = _number(data["ua"])
    return entry

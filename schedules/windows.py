"""Pure booking logic: time parsing, booking validation, window and backoff maths.

No Redis, no clock of its own: every function that needs "now" takes it as an argument.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.anyrtc.models import EPOCH_MS_THRESHOLD
from worker.anyrtc.namerule import NameRule
from worker.errors import InvalidBooking

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_USER_DATA_CHARS",
    "BookingRequest",
    "backoff_s",
    "id_problem",
    "invalid_booking",
    "parse_time",
    "room_type_problem",
    "start_due",
    "stop_due",
    "validate_booking",
]

MAX_ID_LENGTH = 200
MAX_PATH_LENGTH = 256
MAX_ROOM_TYPE_LENGTH = 32
MAX_USER_DATA_CHARS = 8192
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class BookingRequest:
    """A validated ``recordings.schedule`` event; times are epoch seconds."""

    booking_id: str
    room_id: str
    start_at: float
    end_at: float
    user_data: str | dict[str, Any] | None = None
    name_rule: str | None = None
    path: str | None = None
    room_type: str | None = None
    updated_at: float | None = None

    def params(self) -> dict[str, Any]:
        """What a vendor start needs, as stored with the booking."""
        return {
            "user_data": self.user_data,
            "name_rule": self.name_rule,
            "path": self.path,
            "room_type": self.room_type,
        }


def invalid_booking(problems: list[str]) -> InvalidBooking:
    """One InvalidBooking listing every problem (``.problems`` keeps them separate)."""
    error = InvalidBooking("invalid booking: " + "; ".join(problems))
    error.problems = list(problems)  # type: ignore[attr-defined]
    return error


def parse_time(value: Any, name: str = "time") -> float:
    """Epoch seconds from an ISO 8601 string with an offset, or from epoch seconds.

    Epoch seconds may be an int, a float or a numeric string. Raise ValueError saying what is
    wrong: a naive ISO time (no offset) is refused rather than guessed, and so is a value that
    looks like milliseconds.
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be ISO 8601 with an offset or epoch seconds, not a boolean")
    if isinstance(value, int | float):
        return _epoch(float(value), name)
    if not isinstance(value, str):
        raise ValueError(
            f"{name} must be ISO 8601 with an offset or epoch seconds, not {type(value).__name__}"
        )
    text = value.strip()
    if not text:
        raise ValueError(f"{name} must not be empty")
    if _NUMBER.fullmatch(text):
        return _epoch(float(text), name)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{name} {text!r} is neither ISO 8601 (e.g. 2030-01-31T14:00:00+01:00) "
            "nor epoch seconds"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(
            f"{name} {text!r} has no UTC offset; add one (e.g. +01:00 or Z) so the time is exact"
        )
    return _epoch(parsed.timestamp(), name)


def _epoch(number: float, name: str) -> float:
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number of epoch seconds")
    if number <= 0:
        raise ValueError(f"{name} must be a positive number of epoch seconds")
    if number >= EPOCH_MS_THRESHOLD:
        raise ValueError(f"{name} {number:.0f} looks like epoch milliseconds; send seconds")
    return number


def _unencodable(text: str) -> bool:
    # A lone surrogate (JSON "\ud800") passes as a str but fails every UTF-8 write: Redis,
    # the vendor call, a log line.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def id_problem(name: str, value: Any) -> str | None:
    """Why ``value`` is not a usable booking or room id (None when it is)."""
    if not isinstance(value, str):
        return f"{name} must be a string, not {type(value).__name__}"
    if not value.strip():
        return f"{name} must not be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"{name} is {len(value)} characters long; at most {MAX_ID_LENGTH} allowed"
    if _CONTROL.search(value):
        return f"{name} must not contain control characters"
    if _unencodable(value):
        return f"{name} must be valid Unicode (it holds a lone surrogate)"
    return None


def _user_data_problem(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            return "user_data must be a JSON object (string keys)"
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            return f"user_data is not JSON-serialisable: {exc}"
    else:
        return f"user_data must be a string or a JSON object, not {type(value).__name__}"
    if len(text) > MAX_USER_DATA_CHARS:
        return f"user_data is {len(text)} characters; at most {MAX_USER_DATA_CHARS} allowed"
    if _unencodable(text):
        return "user_data must be valid Unicode (it holds a lone surrogate)"
    return None


def _path_problem(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        return "path must be a non-empty string"
    if len(value) > MAX_PATH_LENGTH or _CONTROL.search(value) or _unencodable(value):
        return f"path must be at most {MAX_PATH_LENGTH} printable characters (valid Unicode)"
    if value.startswith("/") or "\\" in value or ".." in value.split("/"):
        return f"path {value!r} must be a relative storage path without '..' or '\\'"
    return None


def room_type_problem(value: Any, allowed: frozenset[str] | None = None) -> str | None:
    """Why ``value`` is not a room type to start with (None when it is, or is not given);
    ``allowed`` is the deployment's list (``ANYRTC_ROOM_TYPES``), case-sensitive as the vendor."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        return "room_type must be a non-empty string (e.g. Meet)"
    if len(value) > MAX_ROOM_TYPE_LENGTH or _CONTROL.search(value) or _unencodable(value):
        return f"room_type must be at most {MAX_ROOM_TYPE_LENGTH} printable characters"
    if allowed is not None and value not in allowed:
        return f"room_type {value!r} is not one of {', '.join(sorted(allowed))} (ANYRTC_ROOM_TYPES)"
    return None


def _time_or_problem(value: Any, name: str, problems: list[str]) -> float | None:
    if value is None:
        problems.append(f"{name} is required")
        return None
    try:
        return parse_time(value, name)
    except ValueError as exc:
        problems.append(str(exc))
        return None


def validate_booking(
    raw: Mapping[str, Any],
    *,
    now: float,
    max_booking_s: float,
    room_types: frozenset[str] | None = None,
) -> BookingRequest:
    """A :class:`BookingRequest` from ``recordings.schedule`` keyword arguments (``room_types``:
    the allowed ``room_type`` values; None takes any well-formed one).

    Raise InvalidBooking listing *every* problem, so one dead letter tells the whole story.
    """
    problems: list[str] = []
    for name in ("booking_id", "room_id"):
        problem = id_problem(name, raw.get(name))
        if problem:
            problems.append(problem)
    start = _time_or_problem(raw.get("start_at"), "start_at", problems)
    end = _time_or_problem(raw.get("end_at"), "end_at", problems)
    if start is not None and end is not None:
        if end <= start:
            problems.append("end_at must be after start_at")
        elif end - start > max_booking_s:
            problems.append(
                f"booking lasts {end - start:.0f}s; at most {max_booking_s:.0f}s "
                "(MAX_BOOKING_S) allowed"
            )
    if end is not None and end <= now:
        problems.append("end_at is not in the future")
    updated_at = None
    if raw.get("updated_at") is not None:
        updated_at = _time_or_problem(raw.get("updated_at"), "updated_at", problems)
    name_rule = raw.get("name_rule")
    if name_rule is not None:
        problems.extend(f"name_rule {p}" for p in NameRule.problems(name_rule))
    for problem in (
        _user_data_problem(raw.get("user_data")),
        _path_problem(raw.get("path")),
        room_type_problem(raw.get("room_type"), room_types),
    ):
        if problem:
            problems.append(problem)
    if problems:
        raise invalid_booking(problems)
    assert start is not None and end is not None
    user_data = raw.get("user_data")
    return BookingRequest(
        booking_id=raw["booking_id"],
        room_id=raw["room_id"],
        start_at=start,
        end_at=end,
        user_data=dict(user_data) if isinstance(user_data, Mapping) else user_data,
        name_rule=name_rule,
        path=raw.get("path"),
        room_type=raw.get("room_type"),
        updated_at=updated_at,
    )


def start_due(start_at: float, lead_s: float) -> float:
    """When the vendor start is due: ``WINDOW_LEAD_S`` before the booked start."""
    return start_at - lead_s


def stop_due(end_at: float, tail_s: float) -> float:
    """When the vendor stop is due: ``WINDOW_TAIL_S`` after the booked end."""
    return end_at + tail_s


def backoff_s(attempt: int, base_s: float, cap_s: float, draw: float) -> float:
    """Delay before retry number ``attempt`` (1 = first retry): capped exponential, equal jitter.

    ``draw`` is a uniform random number in [0, 1) supplied by the caller (tests pass fixed ones).
    Half the delay is fixed so retries never bunch at zero; half is random so a herd of failed
    starts does not retry in lock-step.
    """
    if attempt < 1:
        raise ValueError("attempt starts at 1")
    if not 0.0 <= draw < 1.0:
        raise ValueError("draw must be in [0, 1)")
    exponent = min(attempt - 1, 62)
    ceiling = min(cap_s, base_s * (2.0**exponent))
    return ceiling / 2.0 + draw * ceiling / 2.0

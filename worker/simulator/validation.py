"""Strict parsing of what callers send: start/stop parameters and query bodies.

Strict on purpose: a client that passes here sends exactly what the guide documents.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from worker.anyrtc.namerule import NameRule

__all__ = [
    "BadParameter",
    "QueryRequest",
    "StartOptions",
    "parse_json_object",
    "parse_query",
    "parse_record_params",
    "parse_start_body",
]

_DIGITS = re.compile(r"[0-9]+")
_START_FIELDS = ("Path", "UserData", "NameRule")


class BadParameter(ValueError):
    """A request parameter is missing or wrong; the message says which and why."""


@dataclass(frozen=True)
class StartOptions:
    """The optional body of ``startrecord``."""

    path: str = ""
    user_data: str = ""
    name_rule: str | None = None


@dataclass(frozen=True)
class QueryRequest:
    """A well-typed query body; ``timestamp_text`` is the timestamp exactly as sent."""

    app_id: str
    random: str
    signature: str
    timestamp: int
    timestamp_text: str
    beg_time: int
    end_time: int
    page_num: int | None = None
    page_max: int | None = None
    room_id: str | None = None


def parse_record_params(
    query: Mapping[str, list[str]], room_types: Collection[str]
) -> tuple[str, str, str]:
    """``(AppID, ArRoomID, Type)`` from the query string; the names are case-sensitive."""
    values = []
    for name in ("AppID", "ArRoomID", "Type"):
        given = query.get(name, [])
        if len(given) > 1:
            raise BadParameter(f"{name} given more than once")
        if not given or not given[0]:
            hint = " (the name is case-sensitive: AppID)" if name == "AppID" else ""
            raise BadParameter(f"missing query parameter {name}{hint}")
        values.append(given[0])
    if values[2] not in room_types:
        raise BadParameter(f"Type must be one of {', '.join(sorted(room_types))}")
    return values[0], values[1], values[2]


def parse_json_object(body: bytes, *, allow_empty: bool) -> dict[str, Any]:
    """The body as a JSON object; BadParameter for anything else."""
    if not body.strip():
        if allow_empty:
            return {}
        raise BadParameter("empty body; a JSON object is required")
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadParameter(f"body is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise BadParameter("body must be a JSON object")
    return value


def parse_start_body(body: Mapping[str, Any]) -> StartOptions:
    """Validate ``Path``, ``UserData`` and ``NameRule``; unknown fields are refused."""
    unknown = sorted(set(body) - set(_START_FIELDS))
    if unknown:
        raise BadParameter(f"unknown body field(s) {unknown}; allowed: {list(_START_FIELDS)}")
    path = body.get("Path", "")
    if not isinstance(path, str):
        raise BadParameter("Path must be a string")
    if path.startswith(("/", "\\")) or ".." in path.replace("\\", "/").split("/") or "\0" in path:
        raise BadParameter("Path must be relative, without a leading '/' or '..'")
    user_data = body.get("UserData", "")
    if not isinstance(user_data, str):
        raise BadParameter(
            f"UserData must be a string (send a JSON object as a JSON string), "
            f"not {_json_type(user_data)}"
        )
    name_rule = body.get("NameRule")
    if name_rule is not None:
        problems = NameRule.problems(name_rule)
        if problems:
            raise BadParameter("NameRule " + "; ".join(problems))
    return StartOptions(path=path, user_data=user_data, name_rule=name_rule)


def parse_query(endpoint: str, body: Mapping[str, Any]) -> QueryRequest:
    """Check the body of a query endpoint: every parameter present and of its documented type."""
    app_id = _string(body, "appId")
    random = _string(body, "random")
    if not 6 <= len(random) <= 10:
        raise BadParameter("random must be 6 to 10 characters")
    signature = _string(body, "signature")
    timestamp, timestamp_text = _epoch_ms(body, "timestamp")
    beg_time, _ = _epoch_ms(body, "begTime")
    end_time, _ = _epoch_ms(body, "endTime")
    if beg_time > end_time:
        raise BadParameter("begTime must not be after endTime")
    page_num = page_max = None
    room_id = None
    if endpoint == "getVodListByTime":
        page_num = _int(body, "pageNum", 1, None)
        page_max = _int(body, "pageMax", 1, 100)
    else:
        room_id = _string(body, "roomId")
    return QueryRequest(
        app_id=app_id,
        random=random,
        signature=signature,
        timestamp=timestamp,
        timestamp_text=timestamp_text,
        beg_time=beg_time,
        end_time=end_time,
        page_num=page_num,
        page_max=page_max,
        room_id=room_id,
    )


def _json_type(value: Any) -> str:
    names = {
        dict: "an object",
        list: "an array",
        bool: "a boolean",
        str: "a string",
        type(None): "null",
    }
    return names.get(type(value), "a number")


def _present(body: Mapping[str, Any], name: str) -> Any:
    if name not in body or body[name] is None:
        raise BadParameter(f"missing parameter {name}")
    return body[name]


def _string(body: Mapping[str, Any], name: str) -> str:
    value = _present(body, name)
    if not isinstance(value, str):
        raise BadParameter(f"{name} must be a string, not {_json_type(value)}")
    if not value:
        raise BadParameter(f"{name} must not be empty")
    return value


def _epoch_ms(body: Mapping[str, Any], name: str) -> tuple[int, str]:
    # The guide's own room example sends these as strings of digits, so both forms pass.
    value = _present(body, name)
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise BadParameter(f"{name} must not be negative")
        return value, str(value)
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value), value
    raise BadParameter(f"{name} must be an integer (or a string of digits)")


def _int(body: Mapping[str, Any], name: str, low: int, high: int | None) -> int:
    value = _present(body, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadParameter(f"{name} must be an integer, not {_json_type(value)}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f">= {low}"
        raise BadParameter(f"{name} must be {bounds}")
    return value

"""The ``/_admin/`` API: observe and steer the simulator over HTTP (JSON in, JSON out)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from worker.simulator.config import ENDPOINTS
from worker.simulator.responses import Outcome, json_outcome
from worker.simulator.state import SimulatorState

__all__ = ["ADMIN_PREFIX", "handle_admin"]

ADMIN_PREFIX = "/_admin/"
_JOURNAL_ENDPOINTS = (*ENDPOINTS, "callback")


class AdminError(ValueError):
    """Bad admin input; answered with HTTP 400 and the message."""


def handle_admin(
    state: SimulatorState, method: str, path: str, query: Mapping[str, list[str]], body: bytes
) -> Outcome:
    """Answer one admin request (404 for unknown paths, 405 for a wrong method)."""
    name = path[len(ADMIN_PREFIX) :].strip("/")
    routes = {
        ("GET", "health"): lambda: {"ok": True, "time": state.clock()},
        ("GET", "journal"): lambda: _journal(state, query),
        ("POST", "reset"): lambda: {"config": state.reset(_object(body))},
        ("GET", "config"): state.public_config,
        ("POST", "config"): lambda: state.configure(_object(body, required=True)),
        ("GET", "rooms"): lambda: {"rooms": state.rooms()},
        ("GET", "files"): lambda: {"files": state.files()},
        ("POST", "record"): lambda: {"files": _record(state, _object(body, required=True))},
    }
    action = routes.get((method, name))
    if action is None:
        if any(route_name == name for _, route_name in routes):
            return json_outcome({"error": f"method {method} not allowed here"}, 405)
        return json_outcome({"error": f"no admin endpoint {path}"}, 404)
    try:
        return json_outcome(action())
    except ValueError as exc:
        return json_outcome({"error": str(exc)}, 400)


def _object(body: bytes, *, required: bool = False) -> dict[str, Any]:
    if not body.strip():
        if required:
            raise AdminError("a JSON object body is required")
        return {}
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise AdminError(f"body is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise AdminError("body must be a JSON object")
    return value


def _journal(state: SimulatorState, query: Mapping[str, list[str]]) -> dict[str, Any]:
    since_text = (query.get("since") or [None])[0]
    endpoint = (query.get("endpoint") or [None])[0]
    since = None
    if since_text:
        try:
            since = int(since_text)
        except ValueError as exc:
            raise AdminError("since must be an integer") from exc
    if endpoint is not None and endpoint not in _JOURNAL_ENDPOINTS:
        raise AdminError(f"endpoint must be one of {', '.join(_JOURNAL_ENDPOINTS)}")
    entries, last_seq = state.journal.snapshot(since, endpoint)
    return {"entries": entries, "last_seq": last_seq}


def _record(state: SimulatorState, body: dict[str, Any]) -> list[dict[str, Any]]:
    allowed = {"room_id", "start", "end", "user_data", "app_id", "name_rule"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise AdminError(f"unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    for key in ("room_id", "start", "end"):
        if key not in body:
            raise AdminError(f"{key} is required")
    for key in ("start", "end"):
        value = body[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise AdminError(f"{key} must be epoch seconds (a number)")
    app_id = body.get("app_id")
    if app_id is not None and not isinstance(app_id, str):
        raise AdminError("app_id must be a string")
    return state.record_meeting(
        body["room_id"],
        float(body["start"]),
        float(body["end"]),
        user_data=body.get("user_data", ""),
        app_id=app_id,
        name_rule=body.get("name_rule"),
    )

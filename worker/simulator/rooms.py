"""startrecord/stoprecord rules: parameter checks, the IP allowlist and the room state."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

from worker.anyrtc import results
from worker.anyrtc.namerule import NameRule
from worker.simulator.config import SimulatorConfig
from worker.simulator.faults import FaultPlan
from worker.simulator.responses import Outcome, html_outcome, json_outcome, plain_outcome
from worker.simulator.validation import (
    BadParameter,
    parse_json_object,
    parse_record_params,
    parse_start_body,
)

__all__ = ["Room", "apply_record_call", "ip_allowed", "meeting_room", "record_fault_outcome"]


@dataclass
class Room:
    """A room being recorded after a successful ``startrecord``."""

    app_id: str
    room_id: str
    type: str
    since: float
    user_data: str
    name_rule: str | None
    path: str


def apply_record_call(
    cfg: SimulatorConfig,
    rooms: MutableMapping[tuple[str, str], Room],
    endpoint: str,
    query: Mapping[str, list[str]],
    body: bytes,
    client_ip: str,
    now: float,
) -> tuple[str, Room | None]:
    """The ``result`` of the call and, for a successful stop, the room that stopped.

    Checks in order: parameters and body, app deleted, app unknown, IP allowlist, room state.
    """
    try:
        app_id, room_id, room_type = parse_record_params(query, cfg.room_types)
        fields = parse_json_object(body, allow_empty=True)
        options = parse_start_body(fields) if endpoint == "startrecord" else None
    except BadParameter as exc:
        return f"{results.BAD_PARAMETER}: {exc}", None
    if app_id in cfg.deleted_apps:
        return results.APP_INVALID, None
    if app_id not in cfg.apps:
        return results.APP_NOT_FOUND, None
    if not ip_allowed(client_ip, cfg.allowed_ips):
        return results.IP_NOT_ALLOWED, None
    key = (app_id, room_id)
    if options is None:
        stopped = rooms.pop(key, None)
        return (results.OK, stopped) if stopped else (results.NOT_RECORDING, None)
    if key in rooms:
        return results.ALREADY_RECORDING, None
    rooms[key] = Room(
        app_id=app_id,
        room_id=room_id,
        type=room_type,
        since=now,
        user_data=options.user_data,
        name_rule=options.name_rule,
        path=options.path,
    )
    return results.OK, None


def meeting_room(
    cfg: SimulatorConfig,
    room_id: str,
    start: float,
    end: float,
    *,
    user_data: str,
    app_id: str | None,
    name_rule: str | None,
) -> Room:
    """The room of a meeting the vendor recorded by itself; ValueError names what is wrong.

    ``app_id`` defaults to the first configured app.
    """
    app = app_id if app_id is not None else next(iter(cfg.apps), "")
    if app not in cfg.apps or app in cfg.deleted_apps:
        raise ValueError(f"app_id {app!r} is not a live app")
    if not isinstance(room_id, str) or not room_id:
        raise ValueError("room_id must be a non-empty string")
    if not isinstance(user_data, str):
        raise ValueError("user_data must be a string")
    if name_rule is not None:
        problems = NameRule.problems(name_rule)
        if problems:
            raise ValueError("name_rule " + "; ".join(problems))
    if not (math.isfinite(start) and math.isfinite(end)) or start > end:
        raise ValueError("start and end must be finite and start must not be after end")
    return Room(app, room_id, "Meet", start, user_data, name_rule, "")


def record_fault_outcome(plan: FaultPlan) -> Outcome:
    """What a start/stop call answers under a fault other than ``hang``."""
    if plan.kind == "drop":
        return Outcome(drop=True)
    if plan.kind == "result":
        return json_outcome({"result": plan.result})
    if plan.kind == "error":
        return plain_outcome(500, "Internal Server Error")
    return html_outcome(plan.http_status or 503)


def ip_allowed(client_ip: str, allowed: list[str]) -> bool:
    """Whether the socket peer is in the allowlist (addresses or networks)."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(net, strict=False) for net in allowed)

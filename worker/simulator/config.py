"""Simulator settings: plain dataclasses plus one validated partial-update path.

Every change (constructor overrides, ``POST /_admin/config``, ``reset`` bodies) goes through
:func:`apply_updates`, so the HTTP admin API and the Python API cannot drift apart.
"""

from __future__ import annotations

import copy
import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_APP_ID",
    "DEFAULT_VOD_TOKEN",
    "ENDPOINTS",
    "QUERY_ENDPOINTS",
    "RECORD_ENDPOINTS",
    "RESPONSE_VARIANTS",
    "FaultConfig",
    "SimulatorConfig",
    "apply_updates",
    "build_config",
    "public_config",
]

DEFAULT_APP_ID = "demo-app"
DEFAULT_VOD_TOKEN = "demo-vod-token"
RECORD_ENDPOINTS = ("startrecord", "stoprecord")
QUERY_ENDPOINTS = ("getVodListByTime", "getVodInfoByRoomId")
ENDPOINTS = RECORD_ENDPOINTS + QUERY_ENDPOINTS
RESPONSE_VARIANTS = ("examples", "table", "seconds")
INJECT_FAULTS = ("drop", "hang", "error", "http_error")
MASK = "***"


@dataclass
class FaultConfig:
    """Injected misbehaviour of the four vendor endpoints; rates are probabilities 0..1."""

    error_rate: float = 0.0
    http_error_rate: float = 0.0
    latency_s: float = 0.0
    jitter_s: float = 0.0
    timeout_rate: float = 0.0
    hang_s: float = 30.0
    drop_rate: float = 0.0
    endpoints: list[str] | None = None
    inject_next: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SimulatorConfig:
    """Everything that shapes the simulated vendor; see the package docstring for semantics."""

    apps: dict[str, str] = field(default_factory=lambda: {DEFAULT_APP_ID: DEFAULT_VOD_TOKEN})
    deleted_apps: set[str] = field(default_factory=set)
    allowed_ips: list[str] = field(default_factory=lambda: ["127.0.0.1", "::1"])
    room_types: set[str] = field(default_factory=lambda: {"Meet"})
    rate_limit: int = 5
    rate_period_s: float = 60.0
    timestamp_tolerance_s: float = 300.0
    per_user_files: int = 0
    upload_delay_s: float = 1.0
    listing_lag_s: float = 0.0
    transcode_delay_s: float = 5.0
    transcode_fail_rate: float = 0.0
    callback_url: str | None = None
    callback_drop_rate: float = 0.0
    callback_duplicate_rate: float = 0.0
    callback_timeout_s: float = 5.0
    #: Rooms whose recordings yield no file (the vendor confirms start and stop, then nothing).
    no_file_rooms: list[str] = field(default_factory=list)
    #: Rooms whose files are listed as usual but whose callbacks never come.
    silent_rooms: list[str] = field(default_factory=list)
    response_variant: str = "examples"
    public_url: str | None = None
    # None draws fresh entropy: a restarted demo must not reissue the file ids it gave before.
    seed: int | None = None
    faults: FaultConfig = field(default_factory=FaultConfig)


_FAULT_FIELDS = {f.name for f in fields(FaultConfig)}
_TOP_FIELDS = {f.name for f in fields(SimulatorConfig)}
# Fault fields may also be given flat (``error_rate=0.5``), which reads better in tests and CLI.
_FLAT_FAULT_ALIASES = {name: name for name in _FAULT_FIELDS - {"endpoints"}}
_FLAT_FAULT_ALIASES["fault_endpoints"] = "endpoints"


def build_config(**overrides: Any) -> SimulatorConfig:
    """A default :class:`SimulatorConfig` with ``overrides`` applied (validated)."""
    return apply_updates(SimulatorConfig(), overrides)


def apply_updates(config: SimulatorConfig, updates: Mapping[str, Any]) -> SimulatorConfig:
    """A validated copy of ``config`` with ``updates`` applied; ValueError names the bad field.

    ``apps`` is merged (apps are added or get a new token, never silently removed); every other
    field is replaced. Fault fields are accepted flat or nested under ``faults``.
    """
    if not isinstance(updates, Mapping):
        raise ValueError("config changes must be a JSON object")
    new = copy.deepcopy(config)
    for key, value in updates.items():
        if key == "faults":
            if not isinstance(value, Mapping):
                raise ValueError("faults must be an object")
            for fkey, fvalue in value.items():
                if fkey not in _FAULT_FIELDS:
                    raise ValueError(f"unknown fault field {fkey!r}")
                setattr(new.faults, fkey, _check_fault(fkey, fvalue))
        elif key in _FLAT_FAULT_ALIASES:
            name = _FLAT_FAULT_ALIASES[key]
            setattr(new.faults, name, _check_fault(name, value))
        elif key == "apps":
            new.apps.update(_check_apps(value))
        elif key in _TOP_FIELDS:
            setattr(new, key, _check_top(key, value))
        else:
            raise ValueError(f"unknown config field {key!r}")
    return new


def public_config(config: SimulatorConfig) -> dict[str, Any]:
    """JSON-ready view of ``config`` with every token replaced by ``***``."""
    faults = copy.deepcopy(config.faults.__dict__)
    view: dict[str, Any] = {}
    for f in fields(SimulatorConfig):
        value = getattr(config, f.name)
        if f.name == "apps":
            value = dict.fromkeys(sorted(value), MASK)
        elif f.name == "faults":
            value = faults
        elif isinstance(value, set):
            value = sorted(value)
        else:
            value = copy.deepcopy(value)
        view[f.name] = value
    return view


def _check_top(key: str, value: Any) -> Any:
    if key in ("rate_limit", "per_user_files"):
        return _int(key, value, 0, 10_000)
    if key == "rate_period_s":
        return _float(key, value, positive=True)
    if key in ("timestamp_tolerance_s", "upload_delay_s", "listing_lag_s", "transcode_delay_s"):
        return _float(key, value)
    if key == "callback_timeout_s":
        return _float(key, value, positive=True)
    if key in ("transcode_fail_rate", "callback_drop_rate", "callback_duplicate_rate"):
        return _rate(key, value)
    if key in ("callback_url", "public_url"):
        return None if value is None else _url(key, value)
    if key == "response_variant":
        if value not in RESPONSE_VARIANTS:
            raise ValueError(f"response_variant must be one of {', '.join(RESPONSE_VARIANTS)}")
        return value
    if key == "seed":
        return None if value is None else _int(key, value, -(2**63), 2**63)
    if key == "deleted_apps":
        return set(_str_list(key, value))
    if key in ("no_file_rooms", "silent_rooms"):
        return _str_list(key, value)
    if key == "room_types":
        types = set(_str_list(key, value))
        if not types:
            raise ValueError("room_types must not be empty")
        return types
    if key == "allowed_ips":
        ips = _str_list(key, value)
        for ip in ips:
            try:
                ipaddress.ip_network(ip, strict=False)
            except ValueError as exc:
                raise ValueError(f"allowed_ips: {ip!r} is not an IP address or network") from exc
        return ips
    raise ValueError(f"config field {key!r} cannot be changed this way")


def _check_fault(key: str, value: Any) -> Any:
    if key in ("error_rate", "http_error_rate", "timeout_rate", "drop_rate"):
        return _rate(key, value)
    if key in ("latency_s", "jitter_s", "hang_s"):
        return _float(key, value)
    if key == "endpoints":
        if value is None:
            return None
        names = _str_list(key, value)
        unknown = sorted(set(names) - set(ENDPOINTS))
        if unknown:
            raise ValueError(f"fault endpoints: unknown {unknown}; known: {list(ENDPOINTS)}")
        return names
    if key == "inject_next":
        if not isinstance(value, list):
            raise ValueError("inject_next must be a list of objects")
        return [_check_injection(item) for item in value]
    raise ValueError(f"unknown fault field {key!r}")


def _check_injection(item: Any) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise ValueError("each inject_next entry must be an object")
    entry = dict(item)
    endpoint = entry.setdefault("endpoint", "*")
    if endpoint != "*" and endpoint not in ENDPOINTS:
        raise ValueError(f"inject_next: unknown endpoint {endpoint!r}")
    kinds = [k for k in ("code", "result", "http_status", "fault") if k in entry]
    extra = set(entry) - {"endpoint", "code", "result", "http_status", "fault"}
    if len(kinds) != 1 or extra:
        raise ValueError("inject_next entry needs exactly one of code, result, http_status, fault")
    kind = kinds[0]
    if kind == "code":
        entry["code"] = _int("inject_next code", entry["code"], 0, 999)
        if endpoint in RECORD_ENDPOINTS:
            raise ValueError("inject_next: 'code' applies to query endpoints; use 'result'")
    elif kind == "result":
        if not isinstance(entry["result"], str):
            raise ValueError("inject_next: result must be a string")
        if endpoint in QUERY_ENDPOINTS:
            raise ValueError("inject_next: 'result' applies to startrecord/stoprecord; use 'code'")
    elif kind == "http_status":
        entry["http_status"] = _int("inject_next http_status", entry["http_status"], 200, 599)
    elif entry["fault"] not in INJECT_FAULTS:
        raise ValueError(f"inject_next: fault must be one of {', '.join(INJECT_FAULTS)}")
    return entry


def _check_apps(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError("apps must be an object of app id -> vod token")
    for app_id, token in value.items():
        if not isinstance(app_id, str) or not app_id:
            raise ValueError("apps: app ids must be non-empty strings")
        if not isinstance(token, str) or not token:
            raise ValueError(f"apps: the token of {app_id!r} must be a non-empty string")
    return dict(value)


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number")
    if not math.isfinite(value):
        raise ValueError(f"{key} must be finite")
    return float(value)


def _float(key: str, value: Any, *, positive: bool = False) -> float:
    number = _number(key, value)
    if number < 0 or (positive and number == 0):
        raise ValueError(f"{key} must be {'> 0' if positive else '>= 0'}")
    return number


def _rate(key: str, value: Any) -> float:
    number = _number(key, value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{key} must be between 0 and 1")
    return number


def _int(key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer")
    if not low <= value <= high:
        raise ValueError(f"{key} must be between {low} and {high}")
    return value


def _str_list(key: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise ValueError(f"{key} must be a list of strings")
    if not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{key} must contain only non-empty strings")
    return list(value)


def _url(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string or null")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{key} must be an http(s) URL")
    return value.rstrip("/") if key == "public_url" else value

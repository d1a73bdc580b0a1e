"""One vendor start/stop call, its reply classified for finish_call.lua."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from worker.anyrtc import AnyRTCClient
from worker.anyrtc import results as vendor_results
from worker.anyrtc.client import START, STOP, RecordCall
from worker.errors import AnyRTCError, RecordCallFailed, VendorTimeout, VendorUnreachable

__all__ = [
    "CallOutcome",
    "PreparedCall",
    "ResultStrings",
    "call_vendor",
    "parse_result_patterns",
    "prepare_call",
    "user_data_text",
]

log = logging.getLogger(__name__)

_REGEX_PREFIX = "re:"


def _exact(text: str) -> re.Pattern[str]:
    return re.compile(rf"\A{re.escape(text)}\Z", re.IGNORECASE)


def parse_result_patterns(text: str) -> tuple[re.Pattern[str], ...]:
    """``ANYRTC_*_RESULTS``: entries separated by new lines or ``;``. An entry ``re:<regex>`` is a
    case-insensitive regular expression searched in the result; any other entry must equal the
    result, ignoring case and surrounding white space. ValueError for a bad regex."""
    patterns: list[re.Pattern[str]] = []
    for raw in re.split(r"[;\n]", text):
        entry = raw.strip()
        if not entry:
            continue
        if entry.startswith(_REGEX_PREFIX):
            try:
                patterns.append(re.compile(entry[len(_REGEX_PREFIX) :], re.IGNORECASE))
            except re.error as exc:
                raise ValueError(f"bad regular expression {entry!r}: {exc}") from None
        else:
            patterns.append(_exact(entry))
    return tuple(patterns)


@dataclass(frozen=True)
class ResultStrings:
    """How the vendor's ``result`` says the room already is in the wanted state.

    The vendor does not document these strings (api-notes §2); they are settings, defaulting to
    what the simulator answers. Recognising one only makes a repeat count as done at once: an
    unrecognised one never leaves a room running (finish_call.lua counts a start of uncertain
    outcome as possibly recording whatever the repeat answers)."""

    already_recording: tuple[re.Pattern[str], ...] = (_exact(vendor_results.ALREADY_RECORDING),)
    not_recording: tuple[re.Pattern[str], ...] = (_exact(vendor_results.NOT_RECORDING),)

    @classmethod
    def from_text(cls, already_recording: str, not_recording: str) -> ResultStrings:
        return cls(parse_result_patterns(already_recording), parse_result_patterns(not_recording))

    def means_done(self, kind: str, result: object) -> bool:
        if not isinstance(result, str):
            return False
        patterns = self.already_recording if kind == "start" else self.not_recording
        return any(p.search(result.strip()) for p in patterns)


@dataclass(frozen=True)
class CallOutcome:
    """``outcome``: ok, already (counts as done), retry or fail; code/message as the vendor's."""

    outcome: str
    code: str = ""
    message: str = ""
    reply_lost: bool = False

    @property
    def done(self) -> bool:
        return self.outcome in ("ok", "already")


def user_data_text(user_data: Any) -> str | None:
    """UserData as the vendor receives it (a JSON object is sent as a compact JSON string)."""
    if user_data is None or isinstance(user_data, str):
        return user_data
    return json.dumps(user_data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class PreparedCall:
    """A start or stop built before its due time for ``kind``, ``room_id`` and ``params`` (the
    booking's, as the action script will hand them over); used only if the grant asks for the
    very same call (:meth:`fits`)."""

    kind: str
    room_id: str
    params_json: str
    call: RecordCall

    def fits(self, kind: str, room_id: str, params: dict[str, Any]) -> bool:
        return (kind, room_id, _params_json(params)) == (self.kind, self.room_id, self.params_json)


def _params_json(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


def prepare_call(
    client: AnyRTCClient, kind: str, room_id: str, params: dict[str, Any]
) -> PreparedCall | None:
    """Build ``kind``'s call ahead of time; None when the client refuses the parameters (the
    call at due time then reports the refusal, as without preparing)."""
    try:
        call = _record_call(client, kind, room_id, params)
    except (ValueError, TypeError):
        return None
    return PreparedCall(kind, room_id, _params_json(params), call)


def _record_call(
    client: AnyRTCClient, kind: str, room_id: str, params: dict[str, Any]
) -> RecordCall:
    """The start or stop of ``room_id`` with the booking's ``params``; raises ValueError or
    TypeError for parameters the vendor would refuse."""
    if kind == "start":
        return client.prepare_record(
            START,
            room_id,
            user_data=params.get("user_data"),
            name_rule=params.get("name_rule"),
            path=params.get("path"),
            room_type=params.get("room_type"),
        )
    return client.prepare_record(STOP, room_id, room_type=params.get("room_type"))


def call_vendor(
    client: AnyRTCClient,
    kind: str,
    room_id: str,
    params: dict[str, Any],
    results: ResultStrings | None = None,
    prepared: PreparedCall | None = None,
) -> CallOutcome:
    """Call startrecord or stoprecord once and classify the reply (never raises vendor errors).
    ``prepared``: the same call built ahead, sent as it is when it fits what is asked."""
    try:
        if prepared is not None and prepared.fits(kind, room_id, params):
            call = prepared.call
        else:
            call = _record_call(client, kind, room_id, params)
        client.send_record(call)
    except RecordCallFailed as exc:
        # The reply to a repeated call (after a lost reply) or to a room changed behind our
        # back: the room is already in the state we want.
        if (results or ResultStrings()).means_done(kind, exc.code):
            return CallOutcome("already", str(exc.code), exc.message)
        return CallOutcome("fail", str(exc.code), exc.message)
    except AnyRTCError as exc:
        lost = isinstance(exc, VendorTimeout | VendorUnreachable)
        return CallOutcome(
            "retry" if exc.retryable else "fail", str(exc.code), exc.message, reply_lost=lost
        )
    except (ValueError, TypeError) as exc:
        # Parameters the client refuses: repeating the call cannot help.
        return CallOutcome("fail", "invalid_request", str(exc))
    return CallOutcome("ok", vendor_results.OK, "")

"""One vendor start/stop call, its reply classified for finish_call.lua."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from worker.anyrtc import AnyRTCClient
from worker.anyrtc import results as vendor_results
from worker.errors import AnyRTCError, RecordCallFailed, VendorTimeout, VendorUnreachable

__all__ = ["CallOutcome", "call_vendor", "user_data_text"]

log = logging.getLogger(__name__)


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


def _same(result: object, expected: str) -> bool:
    return isinstance(result, str) and result.strip().lower() == expected


def call_vendor(
    client: AnyRTCClient, kind: str, room_id: str, params: dict[str, Any]
) -> CallOutcome:
    """Call startrecord or stoprecord once and classify the reply (never raises vendor errors)."""
    room_type = params.get("room_type")
    try:
        if kind == "start":
            client.start_record(
                room_id,
                user_data=params.get("user_data"),
                name_rule=params.get("name_rule"),
                path=params.get("path"),
                room_type=room_type,
            )
        else:
            client.stop_record(room_id, room_type=room_type)
    except RecordCallFailed as exc:
        # The reply to a repeated call (after a lost reply) or to a room changed behind our
        # back: the room is already in the state we want.
        if kind == "start" and _same(exc.code, vendor_results.ALREADY_RECORDING):
            return CallOutcome("already", str(exc.code), exc.message)
        if kind == "stop" and _same(exc.code, vendor_results.NOT_RECORDING):
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

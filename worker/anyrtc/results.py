"""``result`` strings of startrecord/stoprecord other than ``ok``.

The guide only says "ok is success, any other value is failure". These are the values the
project's simulator answers for the cases the lifecycle logic must tell apart; a real vendor
reply that differs is still a failure (RecordCallFailed), just not a recognised one.
"""

from __future__ import annotations

__all__ = [
    "ALREADY_RECORDING",
    "APP_INVALID",
    "APP_NOT_FOUND",
    "BAD_PARAMETER",
    "IP_NOT_ALLOWED",
    "NOT_RECORDING",
    "OK",
]

OK = "ok"
ALREADY_RECORDING = "room is already recording"
NOT_RECORDING = "room is not recording"
IP_NOT_ALLOWED = "ip not in whitelist"
APP_NOT_FOUND = "app id does not exist"
APP_INVALID = "app invalid or deleted"
BAD_PARAMETER = "bad parameter"

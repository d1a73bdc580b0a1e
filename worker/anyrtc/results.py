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
    "vendor_error_text",
]

OK = "ok"
ALREADY_RECORDING = "room is already recording"
NOT_RECORDING = "room is not recording"
IP_NOT_ALLOWED = "ip not in whitelist"
APP_NOT_FOUND = "app id does not exist"
APP_INVALID = "app invalid or deleted"
BAD_PARAMETER = "bad parameter"


def vendor_error_text(code: object, message: object) -> str:
    """``code: message``, or the code alone when the message repeats it (a start/stop reply's
    ``result`` is both the code and the message), or ``-`` when there is neither."""
    code_text, message_text = str(code or ""), str(message or "")
    if not message_text or message_text == code_text:
        return code_text or "-"
    if not code_text:
        return message_text
    return f"{code_text}: {message_text}"

"""What the HTTP layer sends back: one :class:`Outcome` per call, built by small helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "QUERY_MESSAGES",
    "Outcome",
    "html_outcome",
    "json_outcome",
    "plain_outcome",
    "query_envelope",
]

QUERY_MESSAGES = {
    200: "success",
    400: "missing or mistyped parameter",
    247: "app id does not exist",
    281: "signature error",
    282: "timestamp error: send the current time in milliseconds",
    284: "app invalid or deleted",
    299: "called too often",
    501: "internal error",
}

_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass
class Outcome:
    """One call's answer: wait ``delay_s``, then send ``body`` with ``status`` (or drop).

    ``payload`` is the decoded JSON answer, so code without HTTP (unit tests) can read it;
    ``entry`` is the journal entry the HTTP layer completes with the call's duration.
    """

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay_s: float = 0.0
    drop: bool = False
    payload: Any = None
    entry: dict[str, Any] | None = None


def json_outcome(payload: Any, status: int = 200) -> Outcome:
    """A JSON answer."""
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return Outcome(status=status, body=body, payload=payload)


def plain_outcome(status: int, text: str) -> Outcome:
    """A text/plain answer, as a bare application server error would send."""
    return Outcome(status=status, body=text.encode("utf-8"), content_type="text/plain")


def html_outcome(status: int) -> Outcome:
    """An HTML error page, as a load balancer or proxy in front of the vendor would send."""
    reason = _REASONS.get(status, "Error")
    page = (
        f"<html><head><title>{status} {reason}</title></head>"
        f"<body><center><h1>{status} {reason}</h1></center><hr><center>nginx</center>"
        "</body></html>\n"
    )
    return Outcome(status=status, body=page.encode("utf-8"), content_type="text/html")


def query_envelope(
    request_id: int, code: int, message: str, content: dict[str, Any] | None, variant: str
) -> dict[str, Any]:
    """The query answer; the ``table`` variant uses the guide table's ``msg``/``conent`` names."""
    table = variant == "table"
    envelope: dict[str, Any] = {"requestid": request_id, "code": code}
    envelope["msg" if table else "message"] = message
    if content is not None:
        envelope["conent" if table else "content"] = content
    return envelope

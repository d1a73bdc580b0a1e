"""Reading a callback body a stranger may have shaped: bounded size, depth and content.

Each refusal is a :class:`BadBody` with the HTTP status and a reason for the sender, never an
exception that would become a 500.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

__all__ = ["MAX_DEPTH", "BadBody", "parse_object", "read_body"]

#: The vendor's body is one flat object; a little nesting is tolerated, a tower is refused.
MAX_DEPTH = 8
_CHUNK = 16384


class BadBody(Exception):
    """The body cannot be accepted: ``status`` (4xx) and ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def read_body(request: Request, limit: int) -> bytes:
    """At most ``limit`` bytes of body, whether announced by Content-Length or chunked; 413
    for more (a chunked body has no length to refuse up front, so it is counted as read)."""
    too_large = BadBody(413, f"body larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    stream = request.environ.get("wsgi.input")
    if stream is None:
        return b""
    if request.content_length is not None:
        return stream.read(request.content_length)
    if not request.environ.get("wsgi.input_terminated"):
        return b""  # no length and no end marker: nothing may be read safely
    received = bytearray()
    try:
        while chunk := stream.read(min(_CHUNK, limit + 1 - len(received))):
            received += chunk
            if len(received) > limit:
                raise too_large
    except RequestEntityTooLarge:
        raise too_large from None
    return bytes(received)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object whose strings are all valid Unicode, nested at most
    :data:`MAX_DEPTH` deep."""
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise BadBody(400, f"body is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise BadBody(400, f"body is not valid JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise BadBody(400, f"body must be a JSON object, not {type(data).__name__}")
    _check_values(data)
    return data


def _check_values(data: dict[str, Any]) -> None:
    # Iterative: the depth is what is being checked, so no recursion here.
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise BadBody(400, f"body is nested more than {MAX_DEPTH} levels deep")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    _encodable(key)
                stack.append((item, depth + 1))
        elif isinstance(value, str):
            _encodable(value)


def _encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadBody(
            400, "body holds a lone surrogate (\\ud800-\\udfff): not valid Unicode"
        ) from None

"""One vendor HTTP call: a POST with a JSON body, every transport failure mapped to our errors.

The vendor's own answer codes are the client's business; this module only guarantees a JSON
object back or an :class:`~worker.errors.AnyRTCError` that says what went wrong on the way.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from worker.errors import (
    BadRequest,
    ProtocolError,
    VendorHTTPError,
    VendorTimeout,
    VendorUnreachable,
)

__all__ = ["clip", "new_session", "post_json"]

log = logging.getLogger(__name__)

_MESSAGE_LIMIT = 300


def clip(text: str) -> str:
    """``text`` on one line and at most 300 characters: vendor text goes into logs and errors."""
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def new_session() -> requests.Session:
    """A pooled session that never retries on its own (retries are the callers' decision)."""
    session = requests.Session()
    # No proxy/netrc look-ups from the environment on every call: they cost CPU in a burst,
    # and vendor calls must go where the settings say.
    session.trust_env = False
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=64, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def post_json(
    session: requests.Session,
    url: str,
    endpoint: str,
    *,
    timeout_s: float,
    params: dict[str, str] | None = None,
    json_body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """POST ``json_body`` (``{}`` if None) and return the answer's JSON object."""
    started = time.monotonic()
    try:
        response = session.post(
            url,
            params=params,
            json=json_body if json_body is not None else {},
            timeout=(timeout_s, timeout_s),
        )
    except requests.ConnectTimeout:
        raise VendorUnreachable(
            "connect_timeout", f"no connection within {timeout_s}s", endpoint=endpoint
        ) from None
    except requests.Timeout:
        raise VendorTimeout(
            "timeout", f"no answer within {timeout_s}s", endpoint=endpoint
        ) from None
    except requests.ConnectionError as exc:
        raise VendorUnreachable(
            "connection",
            clip(type(exc).__name__ + ": connection failed or dropped"),
            endpoint=endpoint,
        ) from None
    except requests.RequestException as exc:
        raise VendorUnreachable("transport", clip(type(exc).__name__), endpoint=endpoint) from None
    elapsed = time.monotonic() - started
    log.debug("anyRTC %s -> HTTP %s in %.3fs", endpoint, response.status_code, elapsed)
    status = response.status_code
    if status >= 500:
        raise VendorHTTPError(
            status, f"HTTP {status} {response.reason or ''}".strip(), endpoint=endpoint
        )
    if status >= 400:
        raise BadRequest(
            status, f"HTTP {status} {response.reason or ''}".strip(), endpoint=endpoint
        )
    try:
        payload = response.json()
    except ValueError:
        raise ProtocolError(
            "bad_response", f"HTTP {status} answer is not JSON", endpoint=endpoint
        ) from None
    if not isinstance(payload, dict):
        raise ProtocolError("bad_response", "answer is not a JSON object", endpoint=endpoint)
    return payload

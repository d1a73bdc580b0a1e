"""The optional shared secret on callbacks (the vendor signs nothing).

Accepted as the ``token`` query parameter (the vendor console only takes a URL) or the
``X-Callback-Token`` header; compared in constant time. Off when ``CALLBACK_TOKEN`` is unset.
"""

from __future__ import annotations

import hmac

from flask import Request
from pydantic import SecretStr

__all__ = ["HEADER", "QUERY_PARAM", "check_token"]

HEADER = "X-Callback-Token"
QUERY_PARAM = "token"


def check_token(request: Request, expected: SecretStr | None) -> tuple[int, str] | None:
    """None when the request may pass; else (HTTP status, reason) without the token itself."""
    if expected is None:
        return None
    given = request.headers.get(HEADER) or request.args.get(QUERY_PARAM)
    if not given:
        return 401, f"callback token required ({QUERY_PARAM!r} query parameter or {HEADER} header)"
    if not hmac.compare_digest(given.encode("utf-8"), expected.get_secret_value().encode("utf-8")):
        return 403, "callback token does not match"
    return None

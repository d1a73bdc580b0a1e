"""The shared secret on callbacks (the vendor signs nothing), required unless turned off.

Accepted as the ``token`` query parameter (the vendor console only takes a URL) or the
``X-Callback-Token`` header; compared in constant time. The web process does not start without
``CALLBACK_TOKEN`` unless ``CALLBACK_AUTH=off`` says explicitly that anyone may post callbacks.
"""

from __future__ import annotations

import hmac
from urllib.parse import quote, quote_plus

from flask import Request
from pydantic import SecretStr

from config.settings import Settings, SettingsError

__all__ = [
    "HEADER",
    "QUERY_PARAM",
    "check_token",
    "require_callback_auth",
    "scrubbed_forms",
]

HEADER = "X-Callback-Token"
QUERY_PARAM = "token"


def require_callback_auth(settings: Settings) -> None:
    """Raise SettingsError (a clean exit naming the setting) when callbacks would be open by
    accident: no ``CALLBACK_TOKEN`` and ``CALLBACK_AUTH`` not ``off``."""
    if settings.callback_token is None and settings.callback_auth != "off":
        raise SettingsError(
            "configuration error: CALLBACK_TOKEN is not set (required by the web process: "
            "give the vendor the callback URL with ?token=<CALLBACK_TOKEN>; set CALLBACK_AUTH=off "
            "only to accept unauthenticated callbacks on purpose)"
        )


def check_token(request: Request, expected: SecretStr | None) -> tuple[int, str] | None:
    """None when the request may pass; else (HTTP status, reason) without the token itself.

    ``expected`` None means authentication is off (``CALLBACK_AUTH=off``, checked at start-up).
    """
    if expected is None:
        return None
    given = request.headers.get(HEADER) or request.args.get(QUERY_PARAM)
    if not given:
        return 401, f"callback token required ({QUERY_PARAM!r} query parameter or {HEADER} header)"
    # Both sides as bytes: compare_digest needs equal types, and a str with non-ASCII fails.
    matches = hmac.compare_digest(
        given.encode("utf-8", "replace"), expected.get_secret_value().encode("utf-8")
    )
    return None if matches else (403, "callback token does not match")


def scrubbed_forms(secrets: list[str]) -> list[str]:
    """Every secret as written, percent-encoded and as ``repr`` shows it (gunicorn logs a bad
    request line with ``%r``)."""
    forms: set[str] = set()
    for secret in secrets:
        forms.update({secret, quote(secret, safe=""), quote_plus(secret), repr(secret)[1:-1]})
    return sorted(f for f in forms if f)

"""Checks for the fields strangers send us (the vendor's callback): text, URLs, times, numbers.

Each raises ValueError saying what is wrong, so pydantic turns it into a 4xx reason. Whatever
passes can be encoded, logged, stored in Redis and published without a surprise later.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "CHINA_STANDARD_TIME",
    "EARLIEST",
    "EPOCH_MS_THRESHOLD",
    "LATEST",
    "MAX_EPOCH_MS",
    "MAX_ID_CHARS",
    "MAX_TEXT_CHARS",
    "MAX_URL_CHARS",
    "check_text",
    "china_local_time",
    "download_url",
    "epoch_ms",
    "normalize_download_url",
    "parse_epoch_or_iso",
    "plausible_time",
]

EPOCH_MS_THRESHOLD = 10**11  # 1973 in ms, year 5138 in s: anything above is milliseconds
# 9999-12-31T23:59:59.999Z, datetime's last instant: a larger epoch is not a date (and would
# raise OverflowError, which pydantic does not turn into a validation error).
MAX_EPOCH_MS = 253_402_300_799_999
MAX_ID_CHARS = 200
MAX_TEXT_CHARS = 8192
MAX_URL_CHARS = 2048
# The vendor's recordings began long after 2000; anything outside this is a broken clock or junk.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The guide's first version: "2018-3-21 13:06:27", no zero padding, no offset (api-notes §6).
_CHINA_LOCAL = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{1,2}):(\d{1,2})")


def check_text(
    value: str, *, max_chars: int, required: bool = False, single_line: bool = True
) -> str:
    """``value`` if it is encodable as UTF-8 (no lone surrogates), short enough, non-blank when
    ``required`` and, when ``single_line``, free of control characters."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (it holds a lone surrogate)") from None
    if required and not value.strip():
        raise ValueError("must not be empty or blank")
    if len(value) > max_chars:
        raise ValueError(f"is {len(value)} characters long; at most {max_chars} allowed")
    if single_line and _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def download_url(value: str, hosts: frozenset[str] = frozenset()) -> str:
    """A stripped http(s) URL with a host and a valid port; on ``hosts`` when that is given
    (a name, or ``.name`` for it and its subdomains)."""
    text = check_text(value, max_chars=MAX_URL_CHARS, required=True).strip()
    if any(c.isspace() for c in text):
        raise ValueError("must not contain white space")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError("has no host")
    if port == 0:
        raise ValueError("has port 0")
    if hosts and not _host_allowed(host, hosts):
        raise ValueError(f"host {host!r} is not in CALLBACK_URL_HOSTS")
    return text


def _host_allowed(host: str, hosts: frozenset[str]) -> bool:
    for allowed in hosts:
        if allowed.startswith("."):
            if host == allowed[1:] or host.endswith(allowed):
                return True
        elif host == allowed:
            return True
    return False


def china_local_time(text: str) -> datetime | None:
    """The old ``2018-3-21 13:06:27`` form, read as China Standard Time; None for other forms."""
    match = _CHINA_LOCAL.fullmatch(text.strip())
    if match is None:
        return None
    try:
        local = datetime(*(int(part) for part in match.groups()), tzinfo=CHINA_STANDARD_TIME)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date ({exc})") from None
    return local.astimezone(UTC)


def plausible_time(value: datetime) -> datetime:
    """``value`` if it lies in 2000..2099 (UTC)."""
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"{value.isoformat()} is not a plausible recording time (2000..2099)")
    return value


def epoch_ms(value: int | float) -> int:
    """An epoch value in seconds or milliseconds, as milliseconds (unit told by magnitude).

    Raises ValueError for infinities, NaN and anything outside 1970..9999.
    """
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    ms = int(number) if abs(number) >= EPOCH_MS_THRESHOLD else round(number * 1000)
    if not 0 <= ms <= MAX_EPOCH_MS:
        raise ValueError(f"{value!r} is not an epoch time between 1970 and 9999")
    return ms


def parse_epoch_or_iso(value: Any) -> datetime:
    """Epoch seconds or ms (int or digit string) or ISO 8601, as an aware UTC datetime."""
    if isinstance(value, bool):
        raise ValueError("must be epoch seconds or an ISO 8601 date, not a boolean")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(epoch_ms(value) / 1000, tz=UTC)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("must not be empty")
        number = _float_or_none(text)
        if number is not None:
            return datetime.fromtimestamp(epoch_ms(number) / 1000, tz=UTC)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{text!r} is neither epoch seconds nor an ISO 8601 date") from None
        if parsed.tzinfo is None:
            raise ValueError(f"{text!r} has no UTC offset")
        return parsed.astimezone(UTC)
    raise ValueError(f"must be epoch seconds or an ISO 8601 date, not {type(value).__name__}")


def normalize_download_url(url: str) -> str:
    """The identity of a recording file: scheme and host lower-cased, default port and
    fragment dropped, surrounding blanks stripped. Path and query are kept as given."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port is not None and not (
        (scheme == "http" and port == 80) or (scheme == "https" and port == 443)
    ):
        host = f"{host}:{port}"
    if parts.username or parts.password:
        host = f"{parts.username or ''}{':' + parts.password if parts.password else ''}@{host}"
    return urlunsplit((scheme, host, parts.path or "/", parts.query, ""))


def _float_or_none(text: str) -> float | None:
    """``text`` as a number, or None when it is not one (then it may still be a date)."""
    try:
        return float(text)
    except ValueError:
        return None

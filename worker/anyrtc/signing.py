"""Request signing for the vendor's query endpoints (api-notes §4)."""

from __future__ import annotations

import hashlib
import secrets
import string

__all__ = ["RANDOM_ALPHABET", "make_random", "sign"]

RANDOM_ALPHABET = string.ascii_letters + string.digits


def sign(app_id: str, timestamp_ms: int | str, vod_token: str, random: str) -> str:
    """``md5(appId + timestamp + vodToken + random)`` as lowercase hex: plain concatenation."""
    material = f"{app_id}{timestamp_ms}{vod_token}{random}"
    return hashlib.md5(material.encode("utf-8")).hexdigest()


def make_random(length: int | None = None) -> str:
    """A fresh 6–10 character alphanumeric nonce from ``secrets``."""
    if length is None:
        length = 6 + secrets.randbelow(5)
    if not 6 <= length <= 10:
        raise ValueError("random must be 6 to 10 characters")
    return "".join(secrets.choice(RANDOM_ALPHABET) for _ in range(length))

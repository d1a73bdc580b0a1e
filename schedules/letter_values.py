"""What a dead letter keeps of a refused event: its values, clipped and free of secrets."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["clipped"]


def clipped(
    kwargs: Mapping[str, Any], max_chars: int = 1024, secrets: Iterable[str] = ()
) -> dict[str, Any]:
    """``kwargs`` as a dead letter keeps them: every oversize value shortened (a 1 MB id is
    refused, and must not then be stored whole) and every secret replaced by ``***``."""
    hidden = [secret for secret in secrets if secret]
    kept: dict[str, Any] = {}
    for name, value in kwargs.items():
        if isinstance(value, str):
            for secret in hidden:
                value = value.replace(secret, "***")
            text = value
        else:
            text = json.dumps(value, default=str)
            if any(json.dumps(secret)[1:-1] in text for secret in hidden):
                value = json.loads(_scrub_json(text, hidden))
                text = json.dumps(value)
        kept[name] = (
            value
            if len(text) <= max_chars
            else (f"{text[:max_chars]}... ({len(text)} characters, clipped)")
        )
    return kept


def _scrub_json(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(json.dumps(secret)[1:-1], "***")
    return text

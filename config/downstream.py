"""``DOWNSTREAM_QUEUES``: which customer queues to declare and bind to the topic exchange.

Format: comma-separated entries ``queue=pattern``, several patterns for one queue joined with
``|``; a bare ``queue`` means ``recording.*``. Example::

    DOWNSTREAM_QUEUES=archive=recording.*,transcribe=recording.ready,alerts=recording.failed

Queue names: letters, digits and ``_ . : -``. Patterns: dot-separated words of letters, digits,
``_`` or ``-``, or the wildcards ``*`` and ``#``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DEFAULT_PATTERN", "QueueBinding", "audit_binding", "parse_downstream_queues"]

DEFAULT_PATTERN = "recording.*"
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
_WORD = re.compile(r"^(?:[A-Za-z0-9_-]+|\*|#)$")


@dataclass(frozen=True)
class QueueBinding:
    """One customer queue and the routing-key patterns it is bound with."""

    queue: str
    patterns: tuple[str, ...]


def _check_pattern(queue: str, pattern: str) -> str:
    words = pattern.split(".")
    if not pattern or not all(_WORD.match(w) for w in words):
        raise ValueError(
            f"DOWNSTREAM_QUEUES: pattern {pattern!r} of queue {queue!r} must be dot-separated "
            "words (letters, digits, _ or -) or the wildcards * and #"
        )
    return pattern


def parse_downstream_queues(text: str) -> list[QueueBinding]:
    """The bindings described by ``text``; ValueError names the bad entry."""
    merged: dict[str, list[str]] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        name, sep, patterns_text = entry.partition("=")
        name = name.strip()
        if not _QUEUE_NAME.match(name):
            raise ValueError(
                f"DOWNSTREAM_QUEUES: queue name {name!r} in entry {entry!r} must be 1-200 "
                "letters, digits or _ . : -"
            )
        patterns = [p.strip() for p in patterns_text.split("|")] if sep else [DEFAULT_PATTERN]
        if sep and not any(patterns):
            raise ValueError(
                f"DOWNSTREAM_QUEUES: entry {entry!r} has '=' but no routing-key pattern"
            )
        for pattern in patterns:
            checked = _check_pattern(name, pattern)
            bucket = merged.setdefault(name, [])
            if checked not in bucket:
                bucket.append(checked)
    return [QueueBinding(name, tuple(patterns)) for name, patterns in merged.items()]


def audit_binding(exchange: str) -> QueueBinding:
    """The internal audit queue ``<exchange>.audit``: every message (file or booking) has a
    home."""
    return QueueBinding(f"{exchange}.audit", (DEFAULT_PATTERN, "booking.*"))

"""Rendering for the operator CLI: aligned tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["ago", "emit", "table", "when"]


def when(epoch: float | None) -> str:
    """Epoch seconds as ``2030-01-31 13:00:00Z`` (UTC), or ``-``."""
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def ago(epoch: float | None, now: float) -> str:
    """A short relative time: ``in 5m``, ``3s ago``."""
    if epoch is None:
        return "-"
    delta = epoch - now
    size = abs(delta)
    if size < 90:
        text = f"{size:.0f}s"
    elif size < 5400:
        text = f"{size / 60:.0f}m"
    elif size < 172800:
        text = f"{size / 3600:.1f}h"
    else:
        text = f"{size / 86400:.1f}d"
    return f"in {text}" if delta >= 0 else f"{text} ago"


def _clip(value: Any, width: int) -> str:
    text = "-" if value is None or value == "" else str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, max_width: int = 60) -> str:
    """Rows under headers, columns padded to their widest cell (cells clipped to max_width)."""
    cells = [[_clip(c, max_width) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def emit(
    as_json: bool,
    data: Any,
    human: Callable[[Any], str],
    *,
    out: TextIO | None = None,
) -> None:
    """Print ``data`` as JSON, or as ``human(data)``."""
    stream = out or sys.stdout
    if as_json:
        stream.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    else:
        stream.write(human(data).rstrip("\n") + "\n")

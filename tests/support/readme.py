"""Pieces of README.md that tests run or compare with the code, so the docs cannot drift."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

__all__ = ["README", "fenced_blocks", "named_python_block", "schema_example", "schema_table"]

README = Path(__file__).resolve().parents[2] / "README.md"

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def fenced_blocks(text: str, language: str) -> list[str]:
    return [body for lang, body in _FENCE.findall(text) if lang == language]


def named_python_block(name: str, text: str | None = None) -> str:
    """The one ```python block of the README whose first line is ``# <name>``."""
    text = README.read_text() if text is None else text
    found = [b for b in fenced_blocks(text, "python") if b.splitlines()[0] == f"# {name}"]
    assert len(found) == 1, f"README has {len(found)} python blocks named {name}"
    return found[0]


def schema_example(schema: str, text: str | None = None) -> dict[str, Any]:
    """The README's ```json example whose ``schema`` is ``schema`` (exactly one)."""
    text = README.read_text() if text is None else text
    found = [json.loads(b) for b in fenced_blocks(text, "json") if f'"schema": "{schema}"' in b]
    assert len(found) == 1, f"README has {len(found)} JSON examples of {schema}"
    return found[0]


def schema_table(schema: str, text: str | None = None) -> list[tuple[str, str]]:
    """``(field, type)`` rows, in order, of the README's ``| field | type | meaning |`` table
    whose ``schema`` row names ``schema``; a row naming several fields gives one each."""
    text = README.read_text() if text is None else text
    tables = re.findall(r"^\| field \| type \| meaning \|\n\| --- .*?\n((?:\|.*\n)+)", text, re.M)
    rows: list[list[str]] = []
    for table in tables:
        cells = [
            [c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()
        ]
        if any(row[0] == "`schema`" and f'"{schema}"' in row[2] for row in cells):
            rows.extend(cells)
    assert rows, f"README has no field table of {schema}"
    return [(name, row[1]) for row in rows for name in re.findall(r"`([a-z_]+)`", row[0])]

"""Reading the Procfile, so the demo runs every process exactly as operators do."""

from __future__ import annotations

from pathlib import Path

__all__ = ["PROCFILE", "read_procfile"]

PROCFILE = Path(__file__).resolve().parents[2] / "Procfile"


def read_procfile(path: Path = PROCFILE) -> dict[str, str]:
    """Process type → command line, in file order."""
    entries: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, command = line.partition(":")
            if not sep or not command.strip():
                raise ValueError(f"{path}: malformed line {line!r}")
            entries[name.strip()] = command.strip()
    return entries

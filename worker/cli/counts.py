"""Subcommand booking-counts: the bookings per state that ``/metrics`` exports, as kept by the
lifecycle scripts (``schedules/counts.py``), next to a full scan of the booking hashes; with
``--rebuild`` the scan's counts replace the kept ones (for counts that drifted, e.g. after keys
were deleted by hand). The scan reads every booking hash: O(bookings), seconds at a million.
"""

from __future__ import annotations

import argparse
from typing import Any

from schedules.counts import BOOKING_STATES, BookingCounts, scan_counts
from worker.cli.common import handles_errors, reading
from worker.cli.output import emit, table

__all__ = ["register"]


@handles_errors
def _counts(args: argparse.Namespace) -> int:
    ctx = reading()
    counts = BookingCounts(ctx.redis, ctx.keys)
    now = ctx.clock()
    pruned = counts.prune(now)
    kept = counts.read()
    scanned = scan_counts(ctx.redis, ctx.keys, now)
    drifted = sorted(
        s for s in set(kept) | set(scanned.counts) if kept.get(s, 0) != scanned.counts.get(s, 0)
    )
    if args.rebuild:
        counts.rebuild(scanned)
    data = {
        "kept": kept,
        "scanned": scanned.counts,
        "drifted": drifted,
        "expired_pruned": pruned.pruned,
        "rebuilt": bool(args.rebuild),
    }

    def human(d: dict[str, Any]) -> str:
        states = [*BOOKING_STATES, *(s for s in d["scanned"] if s not in BOOKING_STATES)]
        rows = [[s, d["kept"].get(s, 0), d["scanned"].get(s, 0)] for s in states]
        lines = [table(["STATE", "KEPT", "SCANNED"], rows)]
        if not d["drifted"]:
            lines.append("kept counts match the scan")
        elif d["rebuilt"]:
            lines.append(f"rebuilt from the scan ({', '.join(d['drifted'])} differed)")
        else:
            lines.append(
                f"{', '.join(d['drifted'])} differ: stop the lifecycle workers and run "
                "anyrtc-recorder booking-counts --rebuild"
            )
        return "\n".join(lines)

    emit(args.json, data, human)
    # A drift left in place is a finding (exit 1), as doctor's are.
    return 1 if drifted and not args.rebuild else 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add booking-counts to the ``anyrtc-recorder`` parser."""
    p = commands.add_parser(
        "booking-counts",
        parents=[common],
        help="bookings per state as kept, against a full scan; --rebuild writes the scan's",
    )
    p.add_argument(
        "--rebuild",
        action="store_true",
        help="replace the kept counts by the scan's (run with the lifecycle workers stopped)",
    )
    p.set_defaults(handler=_counts)

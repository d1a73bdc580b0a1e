"""Subcommands ``deadletters list``, ``deadletters replay ID [--set key=value ...]`` and
``deadletters delete ID``."""

from __future__ import annotations

import argparse
from typing import Any

from schedules.replay import replay
from worker.cli.common import handles_errors, lifecycle, parse_value, reading
from worker.cli.output import emit, table, when

__all__ = ["register"]


@handles_errors
def _list(args: argparse.Namespace) -> int:
    entries = reading().deadletters.list(args.limit, booking_id=args.booking)

    def human(items: list[dict[str, Any]]) -> str:
        if not items:
            return "no dead letters"
        return table(
            ["ID", "CREATED", "TASK", "BOOKING", "ROOM", "ERROR", "MESSAGE", "REPLAYED"],
            [
                [
                    e["id"],
                    when(e.get("created_at")),
                    e.get("task"),
                    e.get("booking_id"),
                    e.get("room_id"),
                    e.get("code") or e.get("error"),
                    e.get("message"),
                    when(e.get("replayed_at")) if e.get("replayed_at") else "-",
                ]
                for e in items
            ],
        )

    emit(args.json, entries, human)
    return 0


def _overrides(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise LookupError(f"--set takes key=value, not {pair!r}")
        out[key] = parse_value(value)
    return out


@handles_errors
def _replay(args: argparse.Namespace) -> int:
    result = replay(lifecycle(), args.id, _overrides(args.set))

    def human(r: dict[str, Any]) -> str:
        return (
            f"dead letter {r['dead_letter']} replayed as {r['task']}: booking "
            f"{r.get('booking_id')} {r.get('verdict')} ({r.get('detail') or '-'}), "
            f"state {r.get('state') or '-'}"
        )

    emit(args.json, result, human)
    return 0


@handles_errors
def _delete(args: argparse.Namespace) -> int:
    if not reading().deadletters.delete(args.id):
        raise LookupError(f"no dead letter {args.id!r}")
    emit(args.json, {"deleted": args.id}, lambda d: f"dead letter {d['deleted']} deleted")
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``deadletters`` with its own ``list``/``replay`` subcommands."""
    group = commands.add_parser("deadletters", help="events and bookings given up on")
    actions = group.add_subparsers(dest="deadletters_command", metavar="ACTION", required=True)
    p = actions.add_parser("list", parents=[common], help="newest first")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--booking", help="only this booking's entries")
    p.set_defaults(handler=_list)
    p = actions.add_parser("replay", parents=[common], help="apply an entry again")
    p.add_argument("id")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="correct a keyword argument first (value parsed as JSON when it is JSON)",
    )
    p.set_defaults(handler=_replay)
    p = actions.add_parser("delete", parents=[common], help="forget an entry (after handling it)")
    p.add_argument("id")
    p.set_defaults(handler=_delete)

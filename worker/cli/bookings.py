"""Subcommands for bookings and windows: schedule, cancel, start, stop, upcoming, active, show,
and migrate-bookings (the earlier storage layout to the compact one, once after upgrading).

Events are applied directly (the same functions the worker's tasks run), so the operator gets
the outcome at once; the worker's dispatcher then carries out the vendor calls when due.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from anyrtc_recorder_client.contract import CANCEL, SCHEDULE, START, STOP, Event
from schedules import cancel, schedule, start_now, stop_now
from schedules.migrate import migrate_bookings
from worker.anyrtc.results import vendor_error_text
from worker.cli.common import Handler, handles_errors, lifecycle, parse_value, reading
from worker.cli.output import ago, emit, table, when

__all__ = ["register"]

SOURCE = "cli"


def _event_text(result: dict[str, Any]) -> str:
    lines = [
        f"booking {result['booking_id']}: {result['verdict']} ({result.get('detail') or '-'})",
        f"state: {result.get('state') or '-'}",
    ]
    if result.get("next_action"):
        lines.append(f"next: {result['next_action']} at {when(result.get('next_at'))}")
    return "\n".join(lines)


def _event_handler(event: Event, apply: Callable[..., dict[str, Any]]) -> Handler:
    """A subcommand that applies ``event`` with the contract's parameters its options gave
    (the ones a subcommand does not offer stay at their defaults)."""

    @handles_errors
    def handler(args: argparse.Namespace) -> int:
        kwargs = event.kwargs(vars(args))
        # --user-data-json (schedule's) is the operator's way to give user_data as an object.
        if getattr(args, "user_data_json", None):
            kwargs["user_data"] = parse_value(args.user_data_json)
        result = apply(lifecycle(), **kwargs, source=SOURCE, dead_letter=False)
        emit(args.json, result, _event_text)
        return 0

    return handler


@handles_errors
def _upcoming(args: argparse.Namespace) -> int:
    ctx = reading()
    now = ctx.clock()
    rows = [{"due": due, **view.as_dict()} for due, view in ctx.reader.upcoming(limit=args.limit)]

    def human(items: list[dict[str, Any]]) -> str:
        if not items:
            return "no upcoming windows"
        return table(
            ["START DUE", "IN", "BOOKING", "ROOM", "START", "END"],
            [
                [
                    when(i["due"]),
                    ago(i["due"], now),
                    i["booking_id"],
                    i["room_id"],
                    when(i["start_at"]),
                    when(i["end_at"]),
                ]
                for i in items
            ],
        )

    emit(args.json, rows, human)
    return 0


@handles_errors
def _active(args: argparse.Namespace) -> int:
    ctx = reading()
    now = ctx.clock()
    data = {
        "bookings": [v.as_dict() for v in ctx.reader.active()],
        "rooms": [r.as_dict() for r in ctx.reader.recording_rooms()],
    }

    def human(d: dict[str, Any]) -> str:
        parts = []
        if d["bookings"]:
            parts.append(
                table(
                    ["BOOKING", "ROOM", "STATE", "STOP DUE", "IN"],
                    [
                        [
                            b["booking_id"],
                            b["held_room"] or b["room_id"],
                            b["state"],
                            when(b["stop_due"]),
                            ago(b["stop_due"], now),
                        ]
                        for b in d["bookings"]
                    ],
                )
            )
        else:
            parts.append("no active bookings")
        if d["rooms"]:
            parts.append(
                table(
                    ["ROOM", "STATE", "SINCE", "HOLDERS"],
                    [
                        [r["room_id"], r["state"], when(r["since"]), ", ".join(r["holders"]) or "-"]
                        for r in d["rooms"]
                    ],
                )
            )
        return "\n\n".join(parts)

    emit(args.json, data, human)
    return 0


def _history_rows(entries: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for e in entries:
        move = e.get("state") or ""
        if e.get("from") is not None and move:
            move = f"{e['from'] or 'new'} -> {move}"
        detail = e.get("detail") or ""
        if e.get("verdict") and e.get("verdict") != "applied":
            detail = f"{e['verdict']}: {detail}".rstrip(": ")
        if e.get("outcome"):
            vendor = vendor_error_text(e.get("code"), e.get("message"))
            detail = f"{e['outcome']} {vendor if vendor != '-' else ''} {detail}"
        rows.append(
            [when(e.get("at")), e.get("event", ""), move, e.get("source") or "", detail.strip()]
        )
    return rows


@handles_errors
def _show(args: argparse.Namespace) -> int:
    ctx = reading()
    view = ctx.reader.booking(args.booking_id)
    if view is None:
        return _show_dead_letters(args, ctx.deadletters.list(booking_id=args.booking_id))
    room_id = view.held_room or view.room_id
    room = ctx.reader.room(room_id) if room_id else None
    data = {
        "booking": view.as_dict(),
        "history": ctx.reader.history(args.booking_id, limit=args.history),
        "room": room.as_dict() if room else None,
        "dead_letters": ctx.deadletters.list(booking_id=args.booking_id),
    }

    def human(d: dict[str, Any]) -> str:
        b = d["booking"]
        fields = [
            ("booking", b["booking_id"]),
            ("room", b["room_id"]),
            ("state", b["state"] + (f" ({b['reason']})" if b["reason"] else "")),
            ("window", f"{when(b['start_at'])} .. {when(b['end_at'])}"),
            ("vendor calls due", f"{when(b['start_due'])} .. {when(b['stop_due'])}"),
            ("next action", f"{b['next_action'] or '-'} at {when(b['next_at'])}"),
            ("updated_at", when(b["updated_at"])),
        ]
        if b["code"]:
            fields.append(("last vendor error", vendor_error_text(b["code"], b["message"])))
        r = d["room"]
        if r:
            fields.append(
                ("room state", f"{r['state']}; holders: {', '.join(r['holders']) or '-'}")
            )
        if d["dead_letters"]:
            fields.append(("dead letters", ", ".join(e["id"] for e in d["dead_letters"])))
        width = max(len(k) for k, _ in fields)
        head = "\n".join(f"{k.ljust(width)}  {v}" for k, v in fields)
        history = table(
            ["AT", "EVENT", "STATE", "SOURCE", "DETAIL"], _history_rows(d["history"]), max_width=80
        )
        return f"{head}\n\nhistory:\n{history}"

    emit(args.json, data, human)
    return 0


def _show_dead_letters(args: argparse.Namespace, letters: list[dict[str, Any]]) -> int:
    """A booking never stored: its event was refused; show the dead letters that say why."""
    if not letters:
        raise LookupError(f"no booking {args.booking_id!r} and no dead letter for it")
    data = {
        "booking": None,
        "note": f"no booking {args.booking_id!r}: its event was dead-lettered",
        "dead_letters": letters,
    }

    def human(d: dict[str, Any]) -> str:
        rows = [
            [
                e["id"],
                when(e.get("created_at")),
                e.get("task"),
                e.get("message") or e.get("error"),
                when(e.get("replayed_at")) if e.get("replayed_at") else "-",
            ]
            for e in d["dead_letters"]
        ]
        head = f"{d['note']} (anyrtc-recorder deadletters replay ID to apply it again):"
        return head + "\n" + table(["ID", "CREATED", "TASK", "WHY", "REPLAYED"], rows)

    emit(args.json, data, human)
    return 0


@handles_errors
def _migrate(args: argparse.Namespace) -> int:
    ctx = reading()
    report = migrate_bookings(ctx.redis, ctx.settings.redis_key_prefix)

    def human(d: dict[str, Any]) -> str:
        lines = [f"moved {d['moved']} booking(s) to the compact layout"]
        lines += [f"left {booking}: {why}" for booking, why in sorted(d["skipped"].items())]
        return "\n".join(lines)

    emit(args.json, report.as_dict(), human)
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add this module's subcommands to the ``anyrtc-recorder`` parser."""
    p = commands.add_parser("schedule", parents=[common], help=SCHEDULE.description)
    p.add_argument("booking_id")
    p.add_argument("room_id")
    p.add_argument("start_at", help="ISO 8601 with offset (2030-01-31T14:00:00+01:00) or epoch s")
    p.add_argument("end_at", help="ISO 8601 with offset or epoch seconds")
    p.add_argument("--user-data", help="UserData string passed to the vendor")
    p.add_argument("--user-data-json", help="UserData as a JSON object")
    p.add_argument("--name-rule")
    p.add_argument("--path")
    p.add_argument("--room-type")
    p.add_argument("--updated-at", help="the booking's last-change time (orders events)")
    p.set_defaults(handler=_event_handler(SCHEDULE, schedule))

    p = commands.add_parser("cancel", parents=[common], help=CANCEL.description)
    p.add_argument("booking_id")
    p.set_defaults(handler=_event_handler(CANCEL, cancel))

    p = commands.add_parser("start", parents=[common], help=START.description)
    p.add_argument("room_id")
    p.add_argument("--booking-id")
    p.add_argument("--user-data")
    p.set_defaults(handler=_event_handler(START, start_now))

    p = commands.add_parser("stop", parents=[common], help=STOP.description)
    p.add_argument("room_id")
    p.add_argument("--booking-id")
    p.set_defaults(handler=_event_handler(STOP, stop_now))

    p = commands.add_parser("upcoming", parents=[common], help="pending windows, soonest first")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(handler=_upcoming)

    p = commands.add_parser("active", parents=[common], help="bookings and rooms recording now")
    p.set_defaults(handler=_active)

    p = commands.add_parser("show", parents=[common], help="one booking: state and history")
    p.add_argument("booking_id")
    p.add_argument("--history", type=int, default=50, help="history entries to show")
    p.set_defaults(handler=_show)

    p = commands.add_parser(
        "migrate-bookings",
        parents=[common],
        help="move bookings stored by an earlier version to the compact layout (workers stopped)",
    )
    p.set_defaults(handler=_migrate)

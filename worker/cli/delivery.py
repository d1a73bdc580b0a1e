"""Subcommands for files and what stands between them and your queues: ``files BOOKING``,
``outbox list`` (file and missing-file messages, then booking events), ``outbox publish ID``,
``rejects``.

All read Redis only (``REDIS_URL``); ``outbox publish`` also reaches the downstream broker.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from schedules.keys import LifecycleKeys
from worker.cli.common import handles_errors, reading
from worker.cli.output import ago, emit, table, when
from worker.discovery.booking_message import event_name
from worker.discovery.keys import DiscoveryKeys
from worker.discovery.ops import OpsLog

__all__ = ["register"]

_SCAN = 1000


def _keys() -> tuple[Any, DiscoveryKeys]:
    ctx = reading()
    return ctx, DiscoveryKeys(ctx.settings.redis_key_prefix)


def _seconds(ms: str | None) -> float | None:
    return int(ms) / 1000 if ms else None


def _record(fid: str, raw: dict[str, str]) -> dict[str, Any]:
    body = json.loads(raw.get("body") or "{}")
    return {
        "message_id": fid,
        "state": raw.get("state"),
        "source": raw.get("source"),
        "routing_key": raw.get("routing_key"),
        "claimed_at": _seconds(raw.get("claimed_ms")),
        "sent_at": _seconds(raw.get("sent_ms")),
        "room_id": body.get("room_id"),
        "booking_ids": body.get("booking_ids") or [],
        "file_name": body.get("file_name"),
        "download_url": body.get("download_url"),
    }


@handles_errors
def _files(args: argparse.Namespace) -> int:
    ctx, keys = _keys()
    client = ctx.redis
    found = []
    # Outbox records are kept 30 days and not indexed by booking: a SCAN, as an operator's
    # question is rare and the outbox is bounded by that TTL.
    for key in client.scan_iter(match=keys.outbox("*"), count=_SCAN, _type="hash"):
        record = _record(key.rsplit(":", 1)[-1], client.hgetall(key))
        if args.booking_id in record["booking_ids"]:
            found.append(record)
    found.sort(key=lambda r: r["sent_at"] or r["claimed_at"] or 0)

    def human(items: list[dict[str, Any]]) -> str:
        if not items:
            return f"no file delivered for booking {args.booking_id}"
        return table(
            ["MESSAGE ID", "SOURCE", "STATE", "PUBLISHED", "STATUS", "ROOM", "FILE"],
            [
                [
                    r["message_id"],
                    r["source"],
                    r["state"],
                    when(r["sent_at"]) if r["sent_at"] else f"claimed {when(r['claimed_at'])}",
                    (r["routing_key"] or "").removeprefix("recording."),
                    r["room_id"],
                    r["file_name"],
                ]
                for r in items
            ],
        )

    emit(args.json, found, human)
    return 0


@handles_errors
def _outbox_list(args: argparse.Namespace) -> int:
    ctx, keys = _keys()
    client = ctx.redis
    now = time.time()
    rows = client.zrange(keys.outbox_pending, 0, args.limit - 1, withscores=True)
    items = []
    for fid, score in rows:
        record = _record(str(fid), client.hgetall(keys.outbox(str(fid))))
        items.append({"kind": "file", **record, "next_attempt_at": score / 1000})
    # The lifecycle's booking events wait in their own outbox (lc:outbox), published by the
    # booking teller of every discovery worker that consumes query.
    told = LifecycleKeys(ctx.settings.redis_key_prefix).outbox
    for member, score in client.zrange(told, 0, args.limit - 1, withscores=True):
        facts = json.loads(member)
        items.append(
            {
                "kind": "booking",
                "message_id": facts.get("message_id"),
                "event": event_name(str(facts.get("state")), str(facts.get("code") or "")),
                "told_at": float(facts.get("at") or 0) or None,
                "next_attempt_at": score / 1000,
                "room_id": facts.get("room_id") or None,
                "booking_ids": [facts["booking_id"]] if facts.get("booking_id") else [],
            }
        )

    def human(entries: list[dict[str, Any]]) -> str:
        if not entries:
            return "outbox empty: every claimed message was published"
        files = [e for e in entries if e["kind"] == "file"]
        told = [e for e in entries if e["kind"] == "booking"]
        parts = []
        if files:
            parts.append(
                table(
                    ["MESSAGE ID", "SOURCE", "CLAIMED", "NEXT ATTEMPT", "ROOM", "BOOKINGS"],
                    [
                        [
                            e["message_id"],
                            e["source"],
                            ago(e["claimed_at"], now),
                            ago(e["next_attempt_at"], now),
                            e["room_id"],
                            ", ".join(e["booking_ids"]) or "-",
                        ]
                        for e in files
                    ],
                )
            )
        if told:
            parts.append(
                "booking events not yet published:\n"
                + table(
                    ["MESSAGE ID", "EVENT", "TOLD", "NEXT ATTEMPT", "ROOM", "BOOKING"],
                    [
                        [
                            e["message_id"],
                            e["event"],
                            ago(e["told_at"], now),
                            ago(e["next_attempt_at"], now),
                            e["room_id"] or "-",
                            ", ".join(e["booking_ids"]) or "-",
                        ]
                        for e in told
                    ],
                )
            )
        return "\n\n".join(parts)

    emit(args.json, items, human)
    return 0


@handles_errors
def _outbox_publish(args: argparse.Namespace) -> int:
    from worker.discovery.fanout import FanOut, Outbox, Publisher

    ctx, keys = _keys()
    publisher = Publisher.from_settings(ctx.settings)
    try:
        sent = FanOut(Outbox(ctx.redis, keys), publisher).republish(args.id)
    finally:
        publisher.close()
    if not sent:
        raise LookupError(f"message {args.id} is not waiting in the outbox (sent, or unknown)")
    emit(args.json, {"published": args.id}, lambda d: f"message {d['published']} published")
    return 0


@handles_errors
def _rejects(args: argparse.Namespace) -> int:
    ctx, keys = _keys()
    ops = OpsLog(ctx.redis, keys)
    data = {
        "total": ops.stats().get("callback_rejected", 0),
        "rejects": [
            {**e, "at": _seconds(e.get("at_ms"))} for e in ops.entries("rejects", args.limit)
        ],
    }

    def human(d: dict[str, Any]) -> str:
        head = f"{d['total']} callback(s) rejected in all; newest first:"
        if not d["rejects"]:
            return f"{d['total']} callback(s) rejected"
        return (
            head
            + "\n"
            + table(
                ["AT", "HTTP", "REASON", "FROM", "BODY"],
                [
                    [
                        when(e["at"]),
                        e.get("status"),
                        e.get("reason"),
                        e.get("remote"),
                        e.get("body"),
                    ]
                    for e in d["rejects"]
                ],
            )
        )

    emit(args.json, data, human)
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``files``, ``outbox`` (``list``, ``publish``) and ``rejects``."""
    p = commands.add_parser("files", parents=[common], help="files delivered for a booking")
    p.add_argument("booking_id")
    p.set_defaults(handler=_files)

    group = commands.add_parser(
        "outbox", help="file and booking messages claimed or told and not yet published"
    )
    actions = group.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    p = actions.add_parser("list", parents=[common], help="unpublished messages, next first")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(handler=_outbox_list)
    p = actions.add_parser("publish", parents=[common], help="publish one again (same id)")
    p.add_argument("id")
    p.set_defaults(handler=_outbox_publish)

    p = commands.add_parser("rejects", parents=[common], help="callbacks refused, with reasons")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(handler=_rejects)

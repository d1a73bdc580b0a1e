"""The backlog read from real Redis keys, as the lifecycle and discovery write them."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from schedules.keys import LifecycleKeys
from worker.cli.backlog import LATE_ACTION_S, STUCK_MESSAGE_S, read_backlog
from worker.discovery.keys import DiscoveryKeys

pytestmark = pytest.mark.integration

NOW = 1_900_000_000.0


def test_counts_only_what_is_late(redis_client: redis.Redis, settings: Any) -> None:
    prefix = settings.redis_key_prefix
    lc, disc = LifecycleKeys(prefix), DiscoveryKeys(prefix)
    redis_client.zadd(
        lc.due,
        {"start:late:1": NOW - LATE_ACTION_S - 1, "start:soon:1": NOW + 60, "stop:now:1": NOW},
    )
    redis_client.zadd(lc.inflight, {"op:r1:1": NOW - LATE_ACTION_S - 5, "op:r2:1": NOW + 3})
    redis_client.zadd(lc.dl_index, {"1": NOW - 100, "2": NOW - 50, "3": NOW - 10})
    entries = {"1": {"id": "1"}, "2": {"id": "2"}, "3": {"id": "3", "replayed_at": NOW - 5}}
    redis_client.hset(lc.dl_entries, mapping={k: json.dumps(v) for k, v in entries.items()})
    redis_client.hset(disc.stats, "callback_rejected", 4)
    claimed = {"old": NOW - STUCK_MESSAGE_S - 30, "fresh": NOW - 5}
    for fid, at in claimed.items():
        redis_client.hset(
            disc.outbox(fid), mapping={"state": "pending", "claimed_ms": int(at * 1000)}
        )
        # Scored by the next publish attempt: the old one was swept a moment ago.
        redis_client.zadd(disc.outbox_pending, {fid: int((NOW + 20) * 1000)})
    redis_client.lpush(disc.rejects, json.dumps({"reason": "bad"}))

    backlog = read_backlog(redis_client, prefix, NOW)

    assert backlog.late_actions == 1
    assert backlog.expired_leases == 1
    assert backlog.dead_letters == 2
    assert backlog.replayed_dead_letters == 1
    assert backlog.unpublished == 2
    assert backlog.oldest_unpublished_s == pytest.approx(STUCK_MESSAGE_S + 30)
    assert backlog.rejected_callbacks == 4  # the counter: the list keeps only the newest
    assert len(backlog.problems()) == 4


def test_an_empty_deployment_has_no_backlog(redis_client: redis.Redis, settings: Any) -> None:
    backlog = read_backlog(redis_client, settings.redis_key_prefix, NOW)
    assert backlog.problems() == []
    assert backlog.oldest_unpublished_s is None


def _told(booking_id: str, at: float) -> str:
    """A member of lc:outbox as ``tell`` in worker/lua/lib.lua writes it (the fields read)."""
    facts = {
        "message_id": f"bk:{booking_id}:1:{int(at * 1000)}",
        "at": at,
        "booking_id": booking_id,
        "room_id": "r",
        "state": "cancelled",
        "code": "",
    }
    return json.dumps(facts)


def test_booking_events_unpublished_for_long_are_a_problem(
    redis_client: redis.Redis, settings: Any
) -> None:
    prefix = settings.redis_key_prefix
    outbox = LifecycleKeys(prefix).outbox
    old, fresh = NOW - STUCK_MESSAGE_S - 40, NOW - 2
    # Scored by the next publish attempt: the old one was leased again a moment ago.
    redis_client.zadd(outbox, {_told("old", old): (NOW + 30) * 1000})
    redis_client.zadd(outbox, {_told("fresh", fresh): fresh * 1000})
    backlog = read_backlog(redis_client, prefix, NOW)
    assert backlog.booking_events.waiting == 2
    assert backlog.booking_events.oldest_s == pytest.approx(STUCK_MESSAGE_S + 40)
    [problem] = backlog.problems()
    assert problem.startswith("2 booking event(s) unpublished, the oldest told")
    redis_client.zrem(outbox, _told("old", old))
    assert read_backlog(redis_client, prefix, NOW).problems() == []
    assert "unpublished booking events 1" in read_backlog(redis_client, prefix, NOW).summary()

"""The compact booking layout on real Redis: a pending booking is one small listpack hash, its
history starts at its next event exactly as it read before, and what it was scheduled with
comes back as received in dead letters and booking messages."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import redis

from config.settings import load_settings
from schedules import Lifecycle, cancel, perform, schedule
from schedules.migrate import migrate_bookings
from schedules.testing import FakeClock, InProcessRunner
from tests.support.old_layout import store_old_layout
from worker.discovery.booking_message import build_booking_message

pytestmark = pytest.mark.integration

T0 = 2_000_000_000.0
START = "2033-05-18T12:33:20+08:00"  # T0 + 1 h, written the way BookingClient writes it
END = "2033-05-18T13:33:20+08:00"
UPDATED = "2033-05-18T11:33:20.250000+08:00"
KWARGS_AS_SENT = {"booking_id": "old-1", "room_id": "r-old", "start_at": START, "end_at": END,
                  "user_data": {"n": 1}, "name_rule": None, "path": None, "room_type": None,
                  "updated_at": UPDATED}  # fmt: skip


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def ctx(redis_client: redis.Redis, clock: FakeClock, vendor: Any) -> Lifecycle:
    return Lifecycle(
        load_settings(), redis_client, clock=clock, sleep=clock.sleep, rng=random.Random(7)
    )


def _booking_keys(ctx: Lifecycle, booking_id: str) -> set[str]:
    return {k for k in ctx.redis.scan_iter(match=ctx.keys.pattern(), count=1000)
            if k.endswith(":" + booking_id)}  # fmt: skip


def test_a_pending_booking_is_one_listpack_hash(ctx: Lifecycle) -> None:
    schedule(ctx, booking_id="b1", room_id="r1", start_at=START, end_at=END,
             user_data={"course": "math-101"}, updated_at=UPDATED)  # fmt: skip
    assert _booking_keys(ctx, "b1") == {ctx.keys.booking("b1")}
    assert ctx.redis.object("encoding", ctx.keys.booking("b1")) == "listpack"
    [entry] = ctx.reader.history("b1")
    assert entry == {
        "event": "schedule", "source": "recordings.schedule", "verdict": "applied",
        "from": "", "state": "scheduled", "next": "start:b1:1",
        "window": [T0 + 3600, T0 + 7200], "room_id": "r1", "detail": "start pending",
        "at": T0, "updated_at": T0 + 0.25,
    }  # fmt: skip


def test_the_first_entry_written_later_is_the_one_read_before(
    ctx: Lifecycle, clock: FakeClock
) -> None:
    schedule(ctx, booking_id="b1", room_id="r1", start_at=T0 + 60, end_at=T0 + 120,
             source="cli")  # fmt: skip
    before = ctx.reader.history("b1")
    clock.advance(5)
    cancel(ctx, booking_id="b1")
    after = ctx.reader.history("b1")
    assert ctx.redis.exists(ctx.keys.bhist("b1"))
    assert after[0] == before[0] and before[0]["source"] == "cli"
    assert [e["state"] for e in after] == ["scheduled", "cancelled"]
    assert ctx.reader.history("b1", limit=1) == after[-1:]


def test_a_missed_booking_keeps_its_event_as_received(ctx: Lifecycle, clock: FakeClock) -> None:
    kwargs = {"booking_id": "b1", "room_id": "r1", "start_at": START, "end_at": END,
              "user_data": {"course": "math-101", "seats": 30}, "name_rule": None, "path": None,
              "room_type": None, "updated_at": UPDATED}  # fmt: skip
    schedule(ctx, **kwargs)
    clock.set(T0 + 8000)  # past the window: its start is missed
    [(action, _)] = ctx.store.claim_due(now=clock(), lease_s=3, limit=10).due
    perform(ctx, action)
    assert ctx.reader.booking("b1").state == "failed"  # type: ignore[union-attr]
    [letter] = ctx.deadletters.list()
    assert letter["task"] == "recordings.schedule" and letter["kwargs"] == kwargs
    [fact] = ctx.redis.zrange(ctx.keys.outbox, 0, -1)
    message = build_booking_message(json.loads(fact))
    assert message["updated_at"] == UPDATED
    assert message["user_data"] == kwargs["user_data"]


def test_bookings_of_the_earlier_layout_are_migrated_and_then_run(
    ctx: Lifecycle, vendor: Any
) -> None:
    store_old_layout(ctx, "old-1", T0 + 3600, T0 + 7200, kwargs=KWARGS_AS_SENT)
    assert ctx.reader.booking("old-1") is None  # not readable before the move
    report = migrate_bookings(ctx.redis, ctx.settings.redis_key_prefix)
    assert report.moved == ["old-1"] and report.skipped == {}
    assert migrate_bookings(ctx.redis, ctx.settings.redis_key_prefix).moved == []
    assert _booking_keys(ctx, "old-1") == {ctx.keys.booking("old-1"), ctx.keys.bhist("old-1")}
    assert ctx.redis.object("encoding", ctx.keys.booking("old-1")) == "listpack"
    view = ctx.reader.booking("old-1")
    assert view is not None and view.next_action == "start:old-1:1"
    assert view.params["user_data"] == {"n": 1} and view.updated_at == T0 + 0.25

    InProcessRunner(ctx).run_until(T0 + 7201, step_s=600)
    assert [e["state"] for e in ctx.reader.history("old-1")] == [
        "scheduled", "starting", "recording", "stopping", "stopped"]  # fmt: skip
    assert [e["verdict"] for e in vendor.journal("startrecord")] == ["ok"]
    facts = [json.loads(f) for f in ctx.redis.zrange(ctx.keys.outbox, 0, -1)]
    assert {build_booking_message(f)["updated_at"] for f in facts} == {UPDATED}

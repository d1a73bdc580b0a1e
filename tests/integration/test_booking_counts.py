"""The per-state booking counts (``lc:counts``) on the real Redis, through the product's own
event and action functions against the simulator: after any sequence of events, due actions
and expiries they equal a full scan of the booking hashes; an expired finished booking leaves
its count; a booking id used again after its hash expired is counted once; migrated bookings
are counted; the operator's rebuild puts drifted counts right.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.settings import load_settings
from schedules import Lifecycle, cancel, schedule, start_now, stop_now
from schedules.counts import BookingCounts, EndedPruner, scan_counts
from schedules.keys import hash_tag
from schedules.migrate import migrate_bookings
from schedules.testing import FakeClock, InProcessRunner
from tests.support.old_layout import store_old_layout
from tests.support.waiting import wait_until
from worker.errors import InvalidBooking

pytestmark = pytest.mark.integration

T0 = 2_000_000_000.0
RETENTION_S = 3600
_examples = itertools.count()


def lifecycle(redis_client: redis.Redis, suffix: str, retention_s: int = RETENTION_S) -> Lifecycle:
    """A lifecycle under a prefix of its own (one per example), on a fake clock."""
    prefix = f"{os.environ['REDIS_KEY_PREFIX']}-{suffix}"
    clock = FakeClock(T0)
    ctx = Lifecycle(
        load_settings(redis_key_prefix=prefix, action_lease_s=2.0, stop_retry_s=30.0),
        redis_client,
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(3),
    )
    ctx.store.retention_s = retention_s
    return ctx


def assert_counts_match_scan(ctx: Lifecycle, *, prune: bool = True) -> None:
    """The kept counts equal a full scan, once pruned; before that they also count each
    finished booking whose hash expired since (in ``ended`` and gone), and only those."""
    counts = BookingCounts(ctx.redis, ctx.keys)
    if prune:
        counts.prune(ctx.clock())
    expected = scan_counts(ctx.redis, ctx.keys, ctx.clock()).counts
    for member in ctx.redis.zrange(ctx.keys.ended, 0, -1):
        state, _, booking_id = member.partition(":")
        if not ctx.redis.exists(ctx.keys.booking(booking_id)):
            expected[state] += 1
    kept = counts.read()
    assert kept == expected
    assert min(kept.values()) >= 0


def expire_due(ctx: Lifecycle) -> None:
    """What Redis does at the retention's end, on the test's clock: finished bookings whose
    expiry (their score in ``ended``) has come lose their hash and history."""
    for member in ctx.redis.zrangebyscore(ctx.keys.ended, "-inf", ctx.clock()):
        booking_id = member.partition(":")[2]
        ctx.redis.delete(ctx.keys.booking(booking_id), ctx.keys.bhist(booking_id))


BOOKINGS = st.sampled_from(["b1", "b2", "b3"])
ROOMS = st.sampled_from(["r1", "r2"])
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("schedule"), BOOKINGS, ROOMS, st.integers(-5, 30), st.integers(1, 30)),
        st.tuples(st.just("cancel"), BOOKINGS),
        st.tuples(st.just("start"), BOOKINGS, ROOMS),
        st.tuples(st.just("stop"), BOOKINGS, ROOMS),
        st.tuples(st.just("run"), st.integers(1, 40)),
        st.tuples(st.just("expire"), st.just(RETENTION_S + 1)),
        st.tuples(st.just("prune")),
    ),
    min_size=1,
    max_size=14,
)


def apply_step(ctx: Lifecycle, run: InProcessRunner, n: int, step: tuple[Any, ...]) -> None:
    """One step through the product's functions; rooms are the example's own (``-<n>``)."""
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    kind = step[0]
    if kind == "schedule":
        _, bid, room, start, length = step
        now = clock()
        schedule(
            ctx,
            booking_id=bid,
            room_id=f"{room}-{n}",
            start_at=now + start,
            end_at=now + start + length,
            dead_letter=False,
        )
    elif kind == "cancel":
        cancel(ctx, booking_id=step[1], dead_letter=False)
    elif kind == "start":
        start_now(ctx, room_id=f"{step[2]}-{n}", booking_id=step[1], dead_letter=False)
    elif kind == "stop":
        stop_now(ctx, room_id=f"{step[2]}-{n}", booking_id=step[1], dead_letter=False)
    elif kind == "run":
        run.run_until(clock() + step[1])
    elif kind == "expire":
        clock.advance(step[1])
        expire_due(ctx)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS)
def test_counts_equal_a_full_scan_after_any_events_actions_and_expiries(
    redis_client: redis.Redis, vendor: Any, steps: list[tuple[Any, ...]]
) -> None:
    n = next(_examples)
    ctx = lifecycle(redis_client, f"p{n}")
    run = InProcessRunner(ctx)
    for step in steps:
        # A refused event (a window already over) is refused as a whole: no state written.
        with contextlib.suppress(InvalidBooking):
            apply_step(ctx, run, n, step)
        assert_counts_match_scan(ctx, prune=step[0] == "prune")


def test_an_expired_finished_booking_leaves_its_count(redis_client: redis.Redis) -> None:
    ctx = lifecycle(redis_client, "expiry", retention_s=1)
    counts = BookingCounts(ctx.redis, ctx.keys)
    schedule(ctx, booking_id="gone", room_id="r", start_at=T0 + 60, end_at=T0 + 120)
    schedule(ctx, booking_id="kept", room_id="r", start_at=T0 + 60, end_at=T0 + 120)
    cancel(ctx, booking_id="gone")
    assert (counts.read()["scheduled"], counts.read()["cancelled"]) == (1, 1)
    # Redis expires the hash on its own clock (1 s of retention); nothing else happens then.
    wait_until(lambda: not ctx.redis.exists(ctx.keys.booking("gone")), 5, "the hash to expire")
    assert counts.read()["cancelled"] == 1
    assert counts.prune(T0 + 2).pruned == 1
    assert (counts.read()["scheduled"], counts.read()["cancelled"]) == (1, 0)
    assert ctx.redis.zcard(ctx.keys.ended) == 0
    assert counts.prune(T0 + 3).pruned == 0


def test_a_booking_id_used_again_after_expiry_is_counted_once(redis_client: redis.Redis) -> None:
    ctx = lifecycle(redis_client, "reuse")
    counts = BookingCounts(ctx.redis, ctx.keys)
    cancel(ctx, booking_id="b")  # a tombstone, cancelled
    ctx.redis.delete(ctx.keys.booking("b"), ctx.keys.bhist("b"))  # expired, not pruned yet
    schedule(ctx, booking_id="b", room_id="r", start_at=T0 + 60, end_at=T0 + 120)
    assert (counts.read()["scheduled"], counts.read()["cancelled"]) == (1, 0)
    assert counts.prune(T0 + RETENTION_S + 1).pruned == 0
    assert_counts_match_scan(ctx)


def test_a_finished_booking_scheduled_again_no_longer_expires_from_the_counts(
    redis_client: redis.Redis,
) -> None:
    ctx = lifecycle(redis_client, "again")
    schedule(ctx, booking_id="b", room_id="r", start_at=T0 + 60, end_at=T0 + 120)
    cancel(ctx, booking_id="b")
    assert ctx.redis.zcard(ctx.keys.ended) == 1
    schedule(ctx, booking_id="b", room_id="r", start_at=T0 + 90, end_at=T0 + 120)
    assert ctx.redis.zcard(ctx.keys.ended) == 0
    assert ctx.redis.ttl(ctx.keys.booking("b")) == -1
    assert_counts_match_scan(ctx)


def test_migrated_bookings_are_counted(redis_client: redis.Redis) -> None:
    ctx = lifecycle(redis_client, "migrate")
    schedule(ctx, booking_id="new", room_id="r", start_at=T0 + 60, end_at=T0 + 120)
    store_old_layout(ctx, "old-pending", T0 + 60, T0 + 120, kwargs={})
    store_old_layout(ctx, "old-done", T0 + 60, T0 + 120, kwargs={})
    old_done = f"{hash_tag(ctx.settings.redis_key_prefix)}:lc:booking:old-done"
    ctx.redis.hset(old_done, mapping={"state": "stopped", "next": "", "next_at": ""})
    ctx.redis.expire(old_done, 600)
    report = migrate_bookings(ctx.redis, ctx.settings.redis_key_prefix, clock=ctx.clock)
    assert sorted(report.moved) == ["old-done", "old-pending"]
    counts = BookingCounts(ctx.redis, ctx.keys)
    assert counts.read()["scheduled"] == 2 and counts.read()["stopped"] == 1
    assert ctx.redis.zrange(ctx.keys.ended, 0, -1) == ["stopped:old-done"]
    assert_counts_match_scan(ctx)


def test_rebuild_puts_drifted_counts_right(redis_client: redis.Redis) -> None:
    ctx = lifecycle(redis_client, "rebuild")
    schedule(ctx, booking_id="a", room_id="r", start_at=T0 + 60, end_at=T0 + 120)
    cancel(ctx, booking_id="c")
    counts = BookingCounts(ctx.redis, ctx.keys)
    ctx.redis.hincrby(ctx.keys.counts, "recording", 5)  # drift
    ctx.redis.delete(ctx.keys.ended)
    counts.rebuild(scan_counts(ctx.redis, ctx.keys, ctx.clock()))
    assert counts.read()["recording"] == 0
    assert ctx.redis.zrange(ctx.keys.ended, 0, -1) == ["cancelled:c"]
    assert_counts_match_scan(ctx)


def test_the_workers_prune_loop_takes_expired_bookings_out_without_a_scrape(
    redis_client: redis.Redis,
) -> None:
    ctx = lifecycle(redis_client, "loop")
    cancel(ctx, booking_id="x")
    ctx.redis.delete(ctx.keys.booking("x"), ctx.keys.bhist("x"))  # expired
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    clock.advance(RETENTION_S + 1)
    pruner = EndedPruner(BookingCounts(ctx.redis, ctx.keys), clock=clock, interval_s=0.05)
    pruner.start()
    try:
        wait_until(lambda: ctx.redis.zcard(ctx.keys.ended) == 0, 5, "the loop to prune")
    finally:
        pruner.stop()
    assert BookingCounts(ctx.redis, ctx.keys).read()["cancelled"] == 0

"""Lifecycle flows in one process under a fake clock: real Redis, real Lua, the simulator over
HTTP. The Celery tasks only wrap these functions; test_lifecycle_worker.py runs a few of the
same flows through a real worker in real time."""

from __future__ import annotations

import itertools
import random
import threading
from typing import Any

import pytest
import redis

from config.settings import load_settings
from schedules import (
    Lifecycle,
    cancel,
    perform,
    perform_batch,
    schedule,
    start_now,
    stop_now,
)
from schedules.actions import run_operation
from schedules.outcomes import CallGrant
from schedules.testing import FakeClock, InProcessRunner
from tests.support.histories import room_history
from worker.anyrtc import results
from worker.errors import InvalidBooking

pytestmark = pytest.mark.integration

T0 = 2_000_000_000.0  # fake "now" at the start of each test (2033)

# The booking state machine (docs/lifecycle.md): from-state ("" = new booking) -> states it
# may move to. Every history a flow leaves must follow it.
BOOKING_TRANSITIONS: dict[str, frozenset[str]] = {
    "": frozenset({"scheduled", "cancelled"}),
    "scheduled": frozenset({"scheduled", "starting", "recording", "failed", "cancelled"}),
    "starting": frozenset(
        {"starting", "recording", "stopping", "scheduled", "stopped", "failed", "cancelled"}
    ),
    "recording": frozenset(
        {"recording", "stopping", "scheduled", "stopped", "failed", "cancelled"}
    ),
    "stopping": frozenset({"stopping", "scheduled", "stopped", "failed", "cancelled"}),
    "stopped": frozenset({"stopped", "scheduled"}),
    "failed": frozenset({"failed", "scheduled"}),
    "cancelled": frozenset({"cancelled", "scheduled"}),
}


def make_ctx(client: redis.Redis, clock: FakeClock, **overrides: Any) -> Lifecycle:
    values: dict[str, Any] = {
        "action_lease_s": 2.0,
        "retry_backoff_base_s": 1.0,
        "retry_backoff_max_s": 4.0,
        "stop_retry_s": 30.0,
    }
    values.update(overrides)
    return Lifecycle(
        load_settings(**values), client, clock=clock, sleep=clock.sleep, rng=random.Random(7)
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def ctx(redis_client: redis.Redis, clock: FakeClock, vendor: Any) -> Lifecycle:
    return make_ctx(redis_client, clock)


@pytest.fixture
def run(ctx: Lifecycle) -> InProcessRunner:
    return InProcessRunner(ctx)


def calls(sim: Any, endpoint: str, room: str | None = None) -> list[dict[str, Any]]:
    return [e for e in sim.journal(endpoint) if room is None or e["params"].get("ArRoomID") == room]


def verdicts(sim: Any, endpoint: str, room: str) -> list[str]:
    return [e["verdict"] for e in calls(sim, endpoint, room)]


def state(ctx: Lifecycle, booking_id: str) -> str:
    view = ctx.reader.booking(booking_id)
    assert view is not None, booking_id
    return view.state


def assert_history_follows_the_state_machine(ctx: Lifecycle, booking_id: str) -> None:
    current = ""
    for entry in ctx.reader.history(booking_id):
        new = entry.get("state")
        if new is None or entry.get("verdict") in ("stale", "ignored", "unchanged"):
            continue
        assert new in BOOKING_TRANSITIONS[current], (booking_id, current, new, entry)
        current = new


def book(ctx: Lifecycle, booking_id: str, room: str, start: float, end: float, **kw: Any) -> dict:
    return schedule(
        ctx, booking_id=booking_id, room_id=room, start_at=T0 + start, end_at=T0 + end, **kw
    )


# -- the basic window ----------------------------------------------------------------------------


def test_start_at_start_and_stop_at_end(ctx: Lifecycle, run: InProcessRunner, vendor: Any) -> None:
    book(ctx, "b1", "r1", 10, 20, user_data={"course": "c1"}, name_rule="ar_{roomid}_{date}")
    run.run_until(T0 + 9)
    assert calls(vendor, "startrecord") == []
    run.run_until(T0 + 10)
    [start] = calls(vendor, "startrecord", "r1")
    assert start["params"]["UserData"] == '{"course":"c1"}'
    assert start["params"]["NameRule"] == "ar_{roomid}_{date}"
    assert state(ctx, "b1") == "recording"
    run.run_until(T0 + 19.5, step_s=0.5)
    assert calls(vendor, "stoprecord") == []
    run.run_until(T0 + 20)
    assert verdicts(vendor, "stoprecord", "r1") == ["ok"]
    assert state(ctx, "b1") == "stopped"
    [session] = ctx.recording_log.for_room("r1")
    assert session.booking_ids == ("b1",)
    assert (session.started_at, session.stopped_at) == (T0 + 10, T0 + 20)
    assert_history_follows_the_state_machine(ctx, "b1")


def test_a_rooms_history_expires_a_retention_after_its_last_entry_and_its_hash_stays(
    ctx: Lifecycle, run: InProcessRunner, redis_client: redis.Redis
) -> None:
    book(ctx, "b1", "r1", 10, 20)
    run.run_until(T0 + 10)
    ttl_while_recording = redis_client.ttl(ctx.keys.rhist("r1"))
    run.run_until(T0 + 20)
    assert state(ctx, "b1") == "stopped"
    retention = ctx.store.retention_s
    assert 0 < ttl_while_recording <= retention
    assert retention - 5 <= redis_client.ttl(ctx.keys.rhist("r1")) <= retention
    assert redis_client.ttl(ctx.keys.room("r1")) == -1  # op_seq must never start over


def test_lead_and_tail_move_the_vendor_calls(
    redis_client: redis.Redis, clock: FakeClock, vendor: Any
) -> None:
    ctx = make_ctx(redis_client, clock, window_lead_s=3.0, window_tail_s=4.0)
    run = InProcessRunner(ctx)
    book(ctx, "b1", "r1", 10, 20)
    run.run_until(T0 + 6)
    assert calls(vendor, "startrecord") == []
    run.run_until(T0 + 7)
    assert len(calls(vendor, "startrecord")) == 1
    run.run_until(T0 + 23)
    assert calls(vendor, "stoprecord") == []
    run.run_until(T0 + 24)
    assert len(calls(vendor, "stoprecord")) == 1


# -- reschedule and cancel -----------------------------------------------------------------------


def test_reschedule_before_start_moves_the_window(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    book(ctx, "b1", "r1", 10, 20)
    book(ctx, "b1", "r1", 30, 40)
    run.run_until(T0 + 29)
    assert calls(vendor, "startrecord") == []
    run.run_until(T0 + 40)
    assert len(calls(vendor, "startrecord")) == 1
    assert len(calls(vendor, "stoprecord")) == 1
    assert state(ctx, "b1") == "stopped"


def test_reschedule_during_recording_moves_only_the_stop(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    book(ctx, "b1", "r1", 10, 20)
    run.run_until(T0 + 15)
    book(ctx, "b1", "r1", 10, 50)
    run.run_until(T0 + 49)
    assert len(calls(vendor, "startrecord")) == 1
    assert calls(vendor, "stoprecord") == []
    run.run_until(T0 + 50)
    assert len(calls(vendor, "stoprecord")) == 1


def test_reschedule_during_recording_to_a_later_window_stops_now_and_restarts(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    book(ctx, "b1", "r1", 10, 20)
    run.run_until(T0 + 15)
    book(ctx, "b1", "r1", 30, 40)
    run.run_until(T0 + 16)
    assert len(calls(vendor, "stoprecord")) == 1
    assert state(ctx, "b1") == "scheduled"
    run.run_until(T0 + 41)
    assert len(calls(vendor, "startrecord")) == 2
    assert len(calls(vendor, "stoprecord")) == 2
    assert state(ctx, "b1") == "stopped"
    assert_history_follows_the_state_machine(ctx, "b1")


def test_reschedule_during_recording_to_another_room_moves_the_recording(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    book(ctx, "b1", "r1", 10, 20)
    run.run_until(T0 + 15)
    book(ctx, "b1", "r2", 10, 20)
    run.run_until(T0 + 17)
    assert verdicts(vendor, "stoprecord", "r1") == ["ok"]
    assert verdicts(vendor, "startrecord", "r2") == ["ok"]
    run.run_until(T0 + 20)
    assert verdicts(vendor, "stoprecord", "r2") == ["ok"]


def test_cancel_before_start_means_no_vendor_call(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    book(ctx, "b1", "r1", 10, 20)
    assert cancel(ctx, booking_id="b1")["state"] == "cancelled"
    run.run_until(T0 + 30)
    assert vendor.journal() == []
    assert state(ctx, "b1") == "cancelled"


def test_cancel_during_recording_stops_now(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    book(ctx, "b1", "r1", 10, 60)
    run.run_until(T0 + 15)
    cancel(ctx, booking_id="b1")
    run.run_until(T0 + 16)
    assert verdicts(vendor, "stoprecord", "r1") == ["ok"]
    assert state(ctx, "b1") == "cancelled"
    run.run_until(T0 + 70)
    assert len(vendor.journal()) == 2
    assert_history_follows_the_state_machine(ctx, "b1")


# -- overlapping bookings ------------------------------------------------------------------------


def test_overlapping_bookings_share_one_recording(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    book(ctx, "b1", "r1", 10, 30)
    book(ctx, "b2", "r1", 20, 40)
    book(ctx, "b3", "r1", 25, 35)
    run.run_until(T0 + 39)
    assert verdicts(vendor, "startrecord", "r1") == ["ok"]
    assert calls(vendor, "stoprecord") == []
    assert [state(ctx, b) for b in ("b1", "b2", "b3")] == ["stopped", "recording", "stopped"]
    run.run_until(T0 + 40)
    assert verdicts(vendor, "stoprecord", "r1") == ["ok"]
    assert state(ctx, "b2") == "stopped"
    [session] = ctx.recording_log.for_room("r1")
    assert set(session.booking_ids) == {"b1", "b2", "b3"}
    for booking in ("b1", "b2", "b3"):
        assert_history_follows_the_state_machine(ctx, booking)


def test_cancelling_one_of_two_holders_keeps_recording(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    book(ctx, "b1", "r1", 10, 30)
    book(ctx, "b2", "r1", 10, 50)
    run.run_until(T0 + 15)
    cancel(ctx, booking_id="b2")
    run.run_until(T0 + 29)
    assert calls(vendor, "stoprecord") == []
    assert state(ctx, "b2") == "cancelled"
    run.run_until(T0 + 30)
    assert verdicts(vendor, "stoprecord", "r1") == ["ok"]


def test_back_to_back_bookings_keep_one_continuous_recording(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    book(ctx, "b1", "r1", 10, 20)
    book(ctx, "b2", "r1", 20, 30)
    run.run_until(T0 + 30)
    assert verdicts(vendor, "startrecord", "r1") == ["ok"]
    assert verdicts(vendor, "stoprecord", "r1") == ["ok"]
    assert [state(ctx, b) for b in ("b1", "b2")] == ["stopped", "stopped"]


def test_a_booking_starting_after_the_room_stopped_gets_a_new_recording(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    book(ctx, "b1", "r1", 10, 20)
    book(ctx, "b2", "r1", 21, 30)
    run.run_until(T0 + 30)
    assert verdicts(vendor, "startrecord", "r1") == ["ok", "ok"]
    assert verdicts(vendor, "stoprecord", "r1") == ["ok", "ok"]
    assert [state(ctx, b) for b in ("b1", "b2")] == ["stopped", "stopped"]


def test_a_holder_arriving_during_the_stop_call_restarts_the_room_after_it(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    book(ctx, "b1", "r1", 10, 20)
    book(ctx, "b2", "r1", 20.5, 30)
    run.run_until(T0 + 19)
    ctx.clock.set(T0 + 20)  # type: ignore[attr-defined]
    [stop] = run.claim()
    stopping = ctx.store.apply_action(stop, now=ctx.clock(), lease_s=ctx.lease_s, token="t1")
    assert stopping.grant is not None and stopping.grant.kind == "stop"
    ctx.clock.set(T0 + 20.5)  # type: ignore[attr-defined]
    [start] = run.claim()
    assert perform(ctx, start)["verdict"] == "waiting"
    assert state(ctx, "b2") == "starting"
    ops = run_operation(ctx, stopping.grant)
    assert [(o["kind"], o["verdict"]) for o in ops] == [
        ("stop", "confirmed"),
        ("start", "confirmed"),
    ]
    assert [state(ctx, b) for b in ("b1", "b2")] == ["stopped", "recording"]
    run.run_until(T0 + 30)
    assert verdicts(vendor, "startrecord", "r1") == ["ok", "ok"]
    assert verdicts(vendor, "stoprecord", "r1") == ["ok", "ok"]
    [first, second] = ctx.recording_log.for_room("r1")
    assert (first.booking_ids, second.booking_ids) == (("b1",), ("b2",))


# -- direct start / stop -------------------------------------------------------------------------


def test_start_and_stop_now(ctx: Lifecycle, run: InProcessRunner, vendor: Any) -> None:
    result = start_now(ctx, room_id="r1", user_data="live")
    assert result["booking_id"] == "manual:r1"
    run.step()
    assert verdicts(vendor, "startrecord", "r1") == ["ok"]
    assert start_now(ctx, room_id="r1")["verdict"] == "unchanged"
    stop_now(ctx, room_id="r1")
    run.step()
    assert verdicts(vendor, "stoprecord", "r1") == ["ok"]
    assert stop_now(ctx, room_id="r1")["verdict"] == "ignored"
    assert stop_now(ctx, room_id="r-never")["verdict"] == "ignored"
    run.step()
    assert len(vendor.journal()) == 2


def test_start_now_on_a_room_a_booking_records_makes_no_vendor_call(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    book(ctx, "b1", "r1", 0, 60)
    run.step()
    start_now(ctx, room_id="r1")
    run.step()
    assert state(ctx, "manual:r1") == "recording"
    stop_now(ctx, room_id="r1")
    run.step()
    assert len(vendor.journal()) == 1
    assert state(ctx, "manual:r1") == "stopped"
    assert state(ctx, "b1") == "recording"


# -- ordering ------------------------------------------------------------------------------------


def test_out_of_order_updated_at_keeps_the_newer_event(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    assert book(ctx, "b1", "r1", 10, 20, updated_at=T0 - 10)["verdict"] == "applied"
    assert book(ctx, "b1", "r1", 30, 40, updated_at=T0 - 20)["verdict"] == "stale"
    assert cancel(ctx, booking_id="b1", updated_at=T0 - 30)["verdict"] == "stale"
    view = ctx.reader.booking("b1")
    assert view is not None and (view.start_at, view.end_at) == (T0 + 10, T0 + 20)
    stale = [e for e in ctx.reader.history("b1") if e.get("verdict") == "stale"]
    assert [e["event"] for e in stale] == ["schedule", "cancel"]
    run.run_until(T0 + 20)
    assert len(calls(vendor, "startrecord")) == 1
    assert len(calls(vendor, "stoprecord")) == 1


def test_a_cancel_that_overtakes_its_schedule_still_wins(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    cancel(ctx, booking_id="b1", updated_at=T0 - 5)
    assert book(ctx, "b1", "r1", 10, 20, updated_at=T0 - 10)["verdict"] == "stale"
    run.run_until(T0 + 30)
    assert vendor.journal() == []


def test_events_without_updated_at_apply_whole_in_arrival_order(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    barrier = threading.Barrier(8)

    def reschedule(i: int) -> None:
        barrier.wait()
        book(ctx, "b1", "r1", 10 + i, 20 + i)

    threads = [threading.Thread(target=reschedule, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    view = ctx.reader.booking("b1")
    assert view is not None
    # Whichever came last, the stored window and the one pending action agree with it.
    assert view.end_at is not None and view.start_at is not None
    assert view.end_at - view.start_at == 10
    pending = [m for m in ctx.redis.zrange(ctx.keys.due, 0, -1) if ":b1:" in m]
    assert pending == [view.next_action]
    assert ctx.redis.zscore(ctx.keys.due, view.next_action) == view.start_at


# -- duplicates and leases -----------------------------------------------------------------------


def test_the_same_action_delivered_twice_calls_the_vendor_once(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    book(ctx, "b1", "r1", 10, 20)
    ctx.clock.set(T0 + 10)  # type: ignore[attr-defined]
    [action] = run.claim()
    barrier = threading.Barrier(6)
    out: list[dict[str, Any]] = []

    def deliver() -> None:
        barrier.wait()
        out.append(perform(ctx, action))

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r["verdict"] for r in out) == ["call"] + ["stale"] * 5
    perform(ctx, action)
    assert len(calls(vendor, "startrecord")) == 1
    op = next(o["op"] for r in out for o in r.get("operations", []))
    assert perform(ctx, op)["verdict"] == "stale"
    assert len(vendor.journal()) == 1


def test_a_batch_delivered_twice_calls_the_vendor_once_per_action(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    for n in range(4):
        book(ctx, f"b{n}", f"r{n}", 10, 20)
    ctx.clock.set(T0 + 10)  # type: ignore[attr-defined]
    actions = run.claim()
    assert len(actions) == 4
    barrier = threading.Barrier(2)
    out: list[dict[str, Any]] = []

    def deliver() -> None:
        barrier.wait()
        out.append(perform_batch(ctx, actions))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.append(perform_batch(ctx, [*actions, actions[0]]))  # late third copy, one id twice
    assert all(r["actions"] == 4 and r["failed"] == [] for r in out)
    assert sum(r["verdicts"].get("call", 0) for r in out) == 4
    for n in range(4):
        assert verdicts(vendor, "startrecord", f"r{n}") == ["ok"]
        assert state(ctx, f"b{n}") == "recording"


def test_a_failing_action_in_a_batch_spares_the_others_and_comes_back_after_its_lease(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from schedules import actions as actions_module

    real_call = actions_module.call_vendor

    def flaky(
        client: Any, kind: str, room_id: str, params: Any, results: Any = None, prepared: Any = None
    ) -> Any:
        if room_id == "r-bad":
            raise RuntimeError("worker bug")
        return real_call(client, kind, room_id, params, results, prepared)

    monkeypatch.setattr(actions_module, "call_vendor", flaky)
    book(ctx, "bad", "r-bad", 10, 20)
    book(ctx, "good", "r-good", 10, 20)
    ctx.clock.set(T0 + 10)  # type: ignore[attr-defined]
    claimed = run.claim()
    summary = perform_batch(ctx, claimed)
    assert summary["failed"] == ["start:bad:1"]
    assert summary["verdicts"] == {"call": 1}
    assert verdicts(vendor, "startrecord", "r-good") == ["ok"]
    assert state(ctx, "good") == "recording"
    assert calls(vendor, "startrecord", "r-bad") == []
    # Its lease runs out: the room operation is issued again and performed normally.
    monkeypatch.setattr(actions_module, "call_vendor", real_call)
    ctx.clock.set(T0 + 10 + ctx.lease_s + 0.1)  # type: ignore[attr-defined]
    again = run.claim()
    assert again and all(a.startswith("op:r-bad:") for a in again)
    assert perform_batch(ctx, again)["failed"] == []
    assert verdicts(vendor, "startrecord", "r-bad") == ["ok"]
    assert state(ctx, "bad") == "recording"


def test_an_action_claimed_ahead_waits_for_its_due_time(
    redis_client: redis.Redis, clock: FakeClock, vendor: Any
) -> None:
    ctx = make_ctx(redis_client, clock, dispatch_ahead_s=2.0)
    run = InProcessRunner(ctx, ahead_s=2.0)
    book(ctx, "b1", "r1", 10, 20)
    clock.set(T0 + 7.9)
    assert run.claim() == []
    clock.set(T0 + 8.5)
    [action] = run.claim()
    # The hand-over lease runs from the claim (the receiving worker renews it), never ending
    # before the due time.
    assert ctx.redis.zscore(ctx.keys.inflight, action) == max(T0 + 8.5 + ctx.lease_s, T0 + 10)
    assert perform(ctx, action)["verdict"] == "call"
    assert clock() == T0 + 10  # it slept until due before touching the booking
    started = [e for e in ctx.reader.history("b1") if e.get("state") == "starting"]
    assert started[0]["at"] == T0 + 10
    assert verdicts(vendor, "startrecord", "r1") == ["ok"]


def test_an_action_whose_task_was_lost_is_issued_again_after_its_lease(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    book(ctx, "b1", "r1", 10, 20)
    ctx.clock.set(T0 + 10)  # type: ignore[attr-defined]
    assert run.claim() == ["start:b1:1"]  # published, then lost with its worker
    ctx.clock.set(T0 + 11.9)  # type: ignore[attr-defined]
    assert run.claim() == []
    ctx.clock.set(T0 + 12.1)  # type: ignore[attr-defined]
    assert run.claim() == ["start:b1:1"]
    perform(ctx, "start:b1:1")
    assert verdicts(vendor, "startrecord", "r1") == ["ok"]


def open_start_attempt(ctx: Lifecycle, run: InProcessRunner, token: str) -> CallGrant:
    """Book b1 in r1 from T0+10 to T0+20 and open its start attempt under ``token`` at T0+10,
    as a worker does just before it calls the vendor (the caller plays what happens next)."""
    book(ctx, "b1", "r1", 10, 20)
    ctx.clock.set(T0 + 10)  # type: ignore[attr-defined]
    [action] = run.claim()
    result = ctx.store.apply_action(action, now=ctx.clock(), lease_s=ctx.lease_s, token=token)
    assert result.grant is not None
    return result.grant


def test_a_call_made_by_a_lost_worker_is_repeated_once_and_already_recording_counts(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    # A worker opens the call attempt, reaches the vendor, and dies before recording the reply.
    open_start_attempt(ctx, run, token="dead")
    ctx.client.start_record("r1")
    run.run_until(T0 + 13)  # the operation's lease ends: it is issued again and repeated
    assert verdicts(vendor, "startrecord", "r1") == ["ok", f"result: {results.ALREADY_RECORDING}"]
    assert state(ctx, "b1") == "recording"
    replies = [e for e in room_history(ctx, "r1") if e["event"] in ("lost", "reply")]
    assert [e["event"] for e in replies] == ["lost", "reply"]
    assert replies[1]["uncertain"] is True
    run.run_until(T0 + 20)
    assert verdicts(vendor, "stoprecord", "r1") == ["ok"]


def test_a_late_start_in_a_released_room_is_stopped_and_changes_nothing_else(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    slow = open_start_attempt(ctx, run, token="slow")
    run.run_until(T0 + 20)  # the slow attempt's lease ends; another attempt starts and stops
    assert [s.stopped_at for s in ctx.recording_log.for_room("r1")] == [T0 + 20]
    ctx.clock.set(T0 + 25)  # type: ignore[attr-defined]
    late = run_operation(ctx, slow)  # the slow worker's call finally goes through
    # The vendor now records a room nobody holds: the late reply opens a stop, made at once.
    assert [(o["kind"], o["verdict"]) for o in late] == [("start", "stale"), ("stop", "confirmed")]
    assert verdicts(vendor, "startrecord", "r1") == ["ok", "ok"]
    assert verdicts(vendor, "stoprecord", "r1") == ["ok", "ok"]
    assert "r1" not in {r.get("room_id") for r in vendor.rooms()}
    # No phantom session opened, and the real one keeps its stop time.
    assert [s.stopped_at for s in ctx.recording_log.for_room("r1")] == [T0 + 20]
    assert state(ctx, "b1") == "stopped"
    events = [e["event"] for e in room_history(ctx, "r1")]
    assert events[-3:] == ["late_reply", "op", "reply"]
    room = ctx.reader.room("r1")
    assert room is not None and room.state == "idle"
    run.run_until(T0 + 60)
    assert verdicts(vendor, "stoprecord", "r1") == ["ok", "ok"]  # nothing more


def test_a_late_start_in_a_room_held_again_is_left_recording(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    slow = open_start_attempt(ctx, run, token="slow")
    run.run_until(T0 + 20)
    book(ctx, "b2", "r1", 22, 40)
    run.run_until(T0 + 25)
    assert state(ctx, "b2") == "recording"
    late = run_operation(ctx, slow)
    assert [o["verdict"] for o in late] == ["stale"]
    assert verdicts(vendor, "stoprecord", "r1") == ["ok"]
    assert state(ctx, "b2") == "recording"
    run.run_until(T0 + 40)
    assert verdicts(vendor, "stoprecord", "r1") == ["ok", "ok"]
    assert state(ctx, "b2") == "stopped"


def test_a_timed_out_call_is_retried_and_not_recording_counts_as_stopped(
    redis_client: redis.Redis, clock: FakeClock, vendor: Any
) -> None:
    ctx = make_ctx(redis_client, clock, anyrtc_http_timeout_s=0.3)
    run = InProcessRunner(ctx)
    book(ctx, "b1", "r1", 10, 20)
    run.run_until(T0 + 10)
    # The stop reaches the vendor but its answer comes too late: the client gives up.
    vendor.configure(hang_s=0.6, inject_next=[{"endpoint": "stoprecord", "fault": "hang"}])
    run.run_until(T0 + 20)
    assert state(ctx, "b1") == "stopping"
    run.run_until(T0 + 30)
    assert verdicts(vendor, "stoprecord", "r1") == [
        "fault: hang; ok",
        f"result: {results.NOT_RECORDING}",
    ]
    assert state(ctx, "b1") == "stopped"


# -- retries and failures ------------------------------------------------------------------------


def test_vendor_errors_then_success_starts(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    vendor.configure(
        inject_next=[
            {"endpoint": "startrecord", "http_status": 503},
            {"endpoint": "startrecord", "fault": "error"},
            {"endpoint": "startrecord", "fault": "drop"},
        ]
    )
    book(ctx, "b1", "r1", 10, 60)
    run.run_until(T0 + 30, step_s=0.5)
    assert verdicts(vendor, "startrecord", "r1") == [
        "fault: http 503",
        "fault: http 500",
        "fault: drop",
        "ok",
    ]
    assert state(ctx, "b1") == "recording"
    times = [e["at"] for e in room_history(ctx, "r1") if e["event"] == "reply"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g >= 0.5 for g in gaps), gaps  # backoff, not a hot loop
    retries = [e for e in ctx.reader.history("b1") if e.get("outcome") == "retry"]
    assert [e["code"] for e in retries] == ["503", "500", "connection"]


def test_a_permanent_vendor_error_fails_at_once_with_a_dead_letter(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    vendor.configure(inject_next=[{"endpoint": "startrecord", "result": results.IP_NOT_ALLOWED}])
    book(ctx, "b1", "r1", 10, 60)
    run.run_until(T0 + 60)
    assert len(calls(vendor, "startrecord")) == 1
    assert calls(vendor, "stoprecord") == []
    view = ctx.reader.booking("b1")
    assert view is not None and view.state == "failed" and view.code == results.IP_NOT_ALLOWED
    [letter] = ctx.deadletters.list()
    assert letter["booking_id"] == "b1" and letter["code"] == results.IP_NOT_ALLOWED
    assert letter["task"] == "recordings.schedule" and letter["kwargs"]["room_id"] == "r1"


def test_a_start_is_retried_only_while_its_window_lasts(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    vendor.configure(error_rate=1.0, fault_endpoints=["startrecord"])
    book(ctx, "b1", "r1", 10, 20)
    run.run_until(T0 + 40)
    attempts = calls(vendor, "startrecord")
    assert 3 <= len(attempts) <= 10
    assert state(ctx, "b1") == "failed"
    [letter] = ctx.deadletters.list()
    assert "window ended before the start succeeded" in letter["message"]
    assert calls(vendor, "stoprecord") == []
    assert ctx.reader.room("r1").state == "idle"  # type: ignore[union-attr]


def test_a_stop_is_retried_for_stop_retry_s_then_dead_lettered(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    book(ctx, "b1", "r1", 10, 20)
    run.run_until(T0 + 10)
    vendor.configure(http_error_rate=1.0, fault_endpoints=["stoprecord"])
    run.run_until(T0 + 60)
    attempts = calls(vendor, "stoprecord")
    assert 5 <= len(attempts) <= 16
    assert attempts[-1]["time"] - attempts[0]["time"] < 60
    assert state(ctx, "b1") == "failed"
    [letter] = ctx.deadletters.list()
    assert "gave up after STOP_RETRY_S" in letter["message"] and letter["code"] == "503"


# -- outages -------------------------------------------------------------------------------------


def test_after_an_outage_a_missed_start_is_made_late_and_a_passed_end_is_stopped(
    ctx: Lifecycle, run: InProcessRunner, vendor: Any
) -> None:
    book(ctx, "late", "r1", 10, 40)
    book(ctx, "gone", "r2", 10, 20)
    book(ctx, "cut", "r3", 0, 15)
    run.step()
    ctx.clock.set(T0 + 30)  # type: ignore[attr-defined]  # nothing ran from 0 to 30
    run.step()
    run.step()
    assert verdicts(vendor, "startrecord", "r1") == ["ok"]
    assert calls(vendor, "startrecord", "r2") == []
    assert verdicts(vendor, "stoprecord", "r3") == ["ok"]
    assert state(ctx, "late") == "recording"
    assert state(ctx, "cut") == "stopped"
    assert state(ctx, "gone") == "failed"
    [letter] = ctx.deadletters.list()
    assert letter["booking_id"] == "gone" and letter["code"] == "missed"


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"end_at": T0 - 1, "start_at": T0 - 100}, "end_at is not in the future"),
        ({"end_at": T0 + 5, "start_at": T0 + 10}, "end_at must be after start_at"),
        ({"end_at": T0 + 20 * 3600}, "MAX_BOOKING_S"),
        ({"name_rule": "nope"}, "name_rule"),
        ({"user_data": 12}, "user_data"),
        ({"start_at": "2033-05-18T03:33:20"}, "no UTC offset"),
    ],
)
def test_bad_input_is_dead_lettered_not_applied(
    ctx: Lifecycle, vendor: Any, changes: dict[str, Any], fragment: str
) -> None:
    kwargs: dict[str, Any] = {
        "booking_id": "b1",
        "room_id": "r1",
        "start_at": T0 + 10,
        "end_at": T0 + 20,
    }
    kwargs.update(changes)
    with pytest.raises(InvalidBooking, match=fragment):
        schedule(ctx, **kwargs)
    assert ctx.reader.booking("b1") is None
    [letter] = ctx.deadletters.list()
    assert fragment in letter["message"] and letter["task"] == "recordings.schedule"

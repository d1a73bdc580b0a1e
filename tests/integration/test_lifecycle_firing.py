"""A herd's actions prepared ahead and fired at their second (schedules/firing.py), against Redis
and the simulator: the prepared request is the very call the vendor gets, warm connections are
open before the second, calls go out before any reply is settled, and nothing goes out early."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
import redis

from config.settings import load_settings
from schedules import Lifecycle, schedule
from schedules import firing as firing_module
from schedules.firing import perform_batch, prepare
from schedules.testing import FakeClock, InProcessRunner
from schedules.vendor import call_vendor, prepare_call
from schedules.workpool import PriorityPool
from tests.support.waiting import wait_until
from worker.anyrtc import AnyRTCClient

pytestmark = pytest.mark.integration

T0 = 2_000_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def ctx(redis_client: redis.Redis, clock: FakeClock, vendor: Any) -> Lifecycle:
    settings = load_settings(action_lease_s=2.0, dispatch_ahead_s=2.0)
    return Lifecycle(settings, redis_client, clock=clock, sleep=clock.sleep, rng=random.Random(7))


def book(ctx: Lifecycle, booking_id: str, room: str, start: float, **kw: Any) -> None:
    schedule(ctx, booking_id=booking_id, room_id=room, start_at=T0 + start, end_at=T0 + 60, **kw)


def test_a_prepared_start_is_the_same_request_as_one_built_at_once(vendor: Any) -> None:
    client = AnyRTCClient(vendor.app_id, vendor.vod_token, record_api_url=vendor.record_api_url)
    params = {"user_data": {"b": 1, "a": "x"}, "name_rule": "ar_{roomid}_{random}", "path": "p/q"}
    prepared = prepare_call(client, "start", "r-prep", params)
    assert prepared is not None and prepared.fits("start", "r-prep", dict(params))
    assert not prepared.fits("start", "r-other", params)
    assert not prepared.fits("start", "r-prep", {**params, "path": "p/z"})
    assert not prepared.fits("stop", "r-prep", params)
    assert call_vendor(client, "start", "r-prep", params, prepared=prepared).outcome == "ok"
    client.stop_record("r-prep")
    client.start_record("r-prep", **params)  # type: ignore[arg-type]
    first, second = [
        e for e in vendor.journal("startrecord") if e["params"]["ArRoomID"] == "r-prep"
    ]
    assert first["params"] == second["params"] and first["verdict"] == second["verdict"] == "ok"


def test_a_refused_parameter_is_not_prepared_and_fails_as_before(vendor: Any) -> None:
    client = AnyRTCClient(vendor.app_id, vendor.vod_token, record_api_url=vendor.record_api_url)
    assert prepare_call(client, "start", "r-bad", {"path": "/abs"}) is None
    outcome = call_vendor(client, "start", "r-bad", {"path": "/abs"})
    assert (outcome.outcome, outcome.code) == ("fail", "invalid_request")
    assert vendor.journal("startrecord") == []


def test_warming_opens_connections_the_calls_then_use(vendor: Any) -> None:
    client = AnyRTCClient(
        vendor.app_id, vendor.vod_token, record_api_url=vendor.record_api_url, pool_size=6
    )

    def held() -> set[Any]:  # connections the simulator holds open
        with vendor.server._httpd._open_lock:
            return set(vendor.server._httpd._open)

    # Counted as new since now: a connection of an earlier test closing meanwhile must not
    # change the count (the simulator is the session's).
    before = held()

    def accepted() -> int:
        return len(held() - before)

    assert client._warmer.idle_open() == 0
    assert client.warm(4, lambda job: job()) == 4
    assert client._warmer.idle_open() == 4
    assert client.warm(4, lambda job: job()) == 0  # already open: nothing to do
    assert client.warm(10, lambda job: job()) == 2  # never more than the pool keeps
    assert client._warmer.idle_open() == 6
    wait_until(lambda: accepted() == 6, 5, "the simulator to accept six connections")
    # Six threads calling at once find six open connections: none is opened at the second.
    barrier = threading.Barrier(6)

    def start(number: int) -> None:
        barrier.wait()
        client.start_record(f"r-warm-{number}")

    threads = [threading.Thread(target=start, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert client._warmer.idle_open() == 6
    assert accepted() == 6
    client.close()


def test_a_batch_makes_every_call_before_settling_any_reply(
    ctx: Lifecycle, clock: FakeClock, vendor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_call, real_conclude = firing_module.call, firing_module.conclude

    def traced_call(ctx: Lifecycle, grant: Any, prepared: Any = None) -> Any:
        events.append(f"call {grant.room_id} prepared={prepared is not None}")
        return real_call(ctx, grant, prepared)

    def traced_conclude(ctx: Lifecycle, grant: Any, *args: Any) -> Any:
        events.append(f"settle {grant.room_id}")
        return real_conclude(ctx, grant, *args)

    monkeypatch.setattr(firing_module, "call", traced_call)
    monkeypatch.setattr(firing_module, "conclude", traced_conclude)
    monkeypatch.setattr(firing_module, "_pool", PriorityPool(1, name="test-actions"))
    for n in range(3):
        book(ctx, f"h{n}", f"r-h{n}", 10)
    clock.set(T0 + 8.5)  # claimed ahead and delivered ahead, as the dispatcher does
    claimed = InProcessRunner(ctx, ahead_s=2.0).claim()
    assert len(claimed) == 3
    result = perform_batch(ctx, claimed)
    assert result["verdicts"] == {"call": 3} and result["failed"] == []
    assert clock() >= T0 + 10  # it waited for the second
    assert events == [f"call r-h{n} prepared=True" for n in range(3)] + [
        f"settle r-h{n}" for n in range(3)
    ]
    assert {ctx.reader.booking(f"h{n}").state for n in range(3)} == {"recording"}  # type: ignore[union-attr]
    summary = result["summaries"]["start:h0:1"]
    assert summary["operations"][0]["sent_at"] >= T0 + 10


def test_preparing_reads_only_and_a_reschedule_after_it_is_honoured(
    ctx: Lifecycle, clock: FakeClock, vendor: Any
) -> None:
    book(ctx, "moved", "r-moved", 10, user_data={"v": 1})
    clock.set(T0 + 8.5)
    claimed = InProcessRunner(ctx, ahead_s=2.0).claim()
    plans = prepare(ctx, claimed)
    assert plans[claimed[0]].due_at == T0 + 10 and plans[claimed[0]].call is not None
    assert ctx.reader.booking("moved").state == "scheduled"  # type: ignore[union-attr]
    # Rescheduled after its request was built: the prepared action is stale (no call), and the
    # new one carries the new parameters.
    book(ctx, "moved", "r-moved", 10, user_data={"v": 2})
    result = perform_batch(ctx, claimed)
    assert result["verdicts"] == {"stale": 1}
    clock.set(T0 + 10)
    assert perform_batch(ctx, InProcessRunner(ctx).claim())["verdicts"] == {"call": 1}
    [call] = [e for e in vendor.journal("startrecord") if e["params"]["ArRoomID"] == "r-moved"]
    assert call["params"]["UserData"] == '{"v":2}'


def test_preparing_loads_the_scripts_a_fresh_redis_does_not_hold() -> None:
    from tests.support.own_redis import OwnRedis
    from worker.redis import scripts_for

    own = OwnRedis().start()
    try:
        client = redis.Redis.from_url(own.url, decode_responses=True)
        scripts = scripts_for(client, "schedules.lua")
        assert scripts.ensure_loaded() > 0  # a new server holds none
        assert scripts.ensure_loaded() == 0
        assert all(client.script_exists(scripts.apply_action.sha, scripts.finish_call.sha))
        client.close()
    finally:
        own.close()


def test_warming_redis_leaves_one_open_connection_per_thread(redis_url: str) -> None:
    from worker.redis import redis_from_url, warm_connections

    client = redis_from_url(redis_url)
    try:
        assert warm_connections(client, 5) == 5
        idle = client.connection_pool._available_connections  # type: ignore[attr-defined]
        assert len(idle) == 5 and all(c._sock is not None for c in idle)
        warm_connections(client, 5)  # the same five, not five more
        assert len(client.connection_pool._available_connections) == 5  # type: ignore[attr-defined]
    finally:
        client.close()


def test_a_reply_noted_but_not_settled_is_settled_by_the_takeover_without_a_second_call(
    ctx: Lifecycle, clock: FakeClock, vendor: Any
) -> None:
    from schedules.actions import begin, call, run_operation

    book(ctx, "noted", "r-noted", 10)
    clock.set(T0 + 10)
    [action] = InProcessRunner(ctx).claim()
    begun = begin(ctx, action)
    assert begun.grant is not None and begun.grant.attempt == 1
    # The vendor answers; the worker dies before settling (a herd settles after its calls).
    assert call(ctx, begun.grant).outcome == "ok"
    assert ctx.reply_notes.flush()  # written by the note thread within a round trip
    assert ctx.reader.booking("noted").state == "starting"  # type: ignore[union-attr]

    clock.advance(ctx.lease_s + 1)  # its lease runs out: the operation is issued again
    [again] = InProcessRunner(ctx).claim()
    taken = begin(ctx, again)
    assert taken.grant is not None and taken.grant.attempt == 2
    [settled] = run_operation(ctx, taken.grant)
    assert settled["outcome"] == "ok"
    assert ctx.reader.booking("noted").state == "recording"  # type: ignore[union-attr]
    starts = [e for e in vendor.journal("startrecord") if e["params"]["ArRoomID"] == "r-noted"]
    assert len(starts) == 1


def test_a_noted_reply_of_another_operation_is_not_used() -> None:
    from schedules.actions import noted_reply

    assert noted_reply('["op:r:1", "ok", "", ""]', "op:r:1") is not None
    assert noted_reply('["op:r:1", "ok", "", ""]', "op:r:2") is None
    assert noted_reply('["op:r:1", "retry", "", ""]', "op:r:1") is None
    assert noted_reply("not json", "op:r:1") is None
    assert noted_reply(None, "op:r:1") is None


def test_the_room_read_ahead_saves_the_read_at_the_second_and_a_stale_one_is_read_again(
    ctx: Lifecycle, clock: FakeClock, vendor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    book(ctx, "hinted", "r-hinted", 10)
    book(ctx, "unhinted", "r-unhinted", 10)
    clock.set(T0 + 10)
    claimed = sorted(InProcessRunner(ctx).claim())
    reads: list[str] = []
    real_hget = ctx.store.r.hget

    def counted_hget(name: str, key: str) -> Any:
        reads.append(name)
        return real_hget(name, key)

    monkeypatch.setattr(ctx.store.r, "hget", counted_hget)
    [hinted] = [a for a in claimed if ":hinted:" in a]
    [unhinted] = [a for a in claimed if ":unhinted:" in a]
    right = ctx.store.apply_action(hinted, now=clock(), lease_s=2, token="t1", room_hint="r-hinted")
    assert right.verdict == "call" and reads == []
    # A room changed since it was read ahead: the script refuses it, the room is read again.
    wrong = ctx.store.apply_action(unhinted, now=clock(), lease_s=2, token="t2", room_hint="r-x")
    assert wrong.verdict == "call" and wrong.grant is not None
    assert wrong.grant.op_id.startswith("op:r-unhinted:") and len(reads) == 1


def test_an_action_is_armed_ahead_as_of_its_due_time_and_called_at_it(
    ctx: Lifecycle, clock: FakeClock, vendor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    armed_at: list[float] = []
    real_apply = ctx.store.apply_action

    def traced_apply(action_id: str, **kw: Any) -> Any:
        armed_at.append(clock())
        return real_apply(action_id, **kw)

    monkeypatch.setattr(ctx.store, "apply_action", traced_apply)
    book(ctx, "armed", "r-armed", 10)
    clock.set(T0 + 8.2)  # delivered early: arming waits until PREPARE_S before the second
    claimed = InProcessRunner(ctx, ahead_s=2.0).claim()
    result = perform_batch(ctx, claimed)
    assert result["verdicts"] == {"call": 1}
    # The guard ran before the second, as of the second; the call went out at the second.
    [when] = armed_at
    assert T0 + 10 - firing_module.PREPARE_S <= when < T0 + 10
    assert result["summaries"][claimed[0]]["operations"][0]["sent_at"] >= T0 + 10
    starting = [e for e in ctx.reader.history("armed") if e.get("state") == "starting"]
    assert [e["at"] for e in starting] == [T0 + 10]
    assert ctx.reader.booking("armed").state == "recording"  # type: ignore[union-attr]


def arm_one(ctx: Lifecycle, clock: FakeClock, booking_id: str, room: str) -> tuple[str, Any, Any]:
    """Book ``booking_id`` to start at T0+10, claim its start at T0+9 and arm it: the action,
    its plan and what arming it began (the call granted, not made)."""
    book(ctx, booking_id, room, 10)
    clock.set(T0 + 9)
    [action] = InProcessRunner(ctx, ahead_s=2.0).claim()
    plan = prepare(ctx, [action])[action]
    begun = firing_module.arm(ctx, action, plan)
    assert begun.grant is not None and begun.held is not None
    return action, plan, begun


def test_a_cancel_after_arming_is_applied_right_after_the_start(
    ctx: Lifecycle, clock: FakeClock, vendor: Any
) -> None:
    from schedules import cancel
    from schedules.actions import run_operation

    _, plan, begun = arm_one(ctx, clock, "late-cancel", "r-late-cancel")
    assert ctx.reader.booking("late-cancel").state == "starting"  # type: ignore[union-attr]
    # Half a second before the start: too late to keep the start, not to honour the cancel.
    clock.set(T0 + 9.5)
    cancel(ctx, booking_id="late-cancel")
    firing_module.wait_until(ctx, plan.due_at)
    run_operation(ctx, begun.grant, begun.holders, plan.call)
    ctx.leases.release_attempt(begun.held)
    perform_batch(ctx, InProcessRunner(ctx).claim())  # its release, due now
    journal = [
        e["endpoint"] for e in vendor.journal() if e["params"].get("ArRoomID") == "r-late-cancel"
    ]
    assert journal == ["startrecord", "stoprecord"]
    assert ctx.reader.booking("late-cancel").state == "cancelled"  # type: ignore[union-attr]


def test_an_armed_call_whose_process_died_is_made_after_its_lease_never_early(
    ctx: Lifecycle, clock: FakeClock, vendor: Any
) -> None:
    from schedules.actions import begin, run_operation

    _, _, armed = arm_one(ctx, clock, "orphan", "r-orphan")
    # The process dies here: its heartbeat stops and nothing is sent. Nobody takes the
    # operation over before the lease, counted from the due time, has run out.
    ctx.leases.release_attempt(armed.held)  # type: ignore[arg-type]
    clock.set(T0 + 10 + ctx.lease_s - 0.1)
    assert InProcessRunner(ctx).claim() == []
    clock.set(T0 + 10 + ctx.lease_s + 0.1)
    [again] = InProcessRunner(ctx).claim()
    taken = begin(ctx, again)
    assert taken.grant is not None and taken.grant.attempt == 2
    [settled] = run_operation(ctx, taken.grant)
    assert settled["outcome"] == "ok" and settled["sent_at"] > T0 + 10
    starts = [e for e in vendor.journal("startrecord") if e["params"]["ArRoomID"] == "r-orphan"]
    assert len(starts) == 1
    assert ctx.reader.booking("orphan").state == "recording"  # type: ignore[union-attr]


def test_a_stop_is_not_armed_while_its_rooms_start_is_unsettled_so_it_never_comes_early(
    ctx: Lifecycle, clock: FakeClock, vendor: Any
) -> None:
    from schedules.actions import run_operation

    schedule(ctx, booking_id="short", room_id="r-short", start_at=T0 + 10, end_at=T0 + 11)
    clock.set(T0 + 9)
    [start] = InProcessRunner(ctx, ahead_s=2.0).claim()
    start_plan = prepare(ctx, [start])[start]
    started = firing_module.arm(ctx, start, start_plan)
    assert started.grant is not None  # the room is starting, its call not made yet
    clock.set(T0 + 10)
    [stop] = InProcessRunner(ctx, ahead_s=2.0).claim()
    stop_plan = prepare(ctx, [stop])[stop]
    # Armed as of T0+11 now, the release would make the start's settlement stop the room at
    # once, a second early. Not armed: nothing written, run at its due time instead.
    stopping = firing_module.arm(ctx, stop, stop_plan)
    assert stopping.deferred and stopping.grant is None
    assert ctx.reader.booking("short").state == "starting"  # type: ignore[union-attr]
    clock.set(T0 + 10.1)
    run_operation(ctx, started.grant, started.holders, start_plan.call)
    ctx.leases.release_attempt(started.held)  # type: ignore[arg-type]
    assert ctx.reader.booking("short").state == "recording"  # type: ignore[union-attr]
    assert vendor.journal("stoprecord") == []
    summary = firing_module._perform_at_due(ctx, stop, stop_plan)
    assert summary["operations"][0]["kind"] == "stop"
    assert summary["operations"][0]["sent_at"] >= T0 + 11
    assert ctx.reader.booking("short").state == "stopped"  # type: ignore[union-attr]


def test_a_start_is_not_armed_while_its_room_stops_and_is_made_at_its_second(
    ctx: Lifecycle, clock: FakeClock, vendor: Any
) -> None:
    from schedules.actions import run_operation

    schedule(ctx, booking_id="before", room_id="r-turn", start_at=T0 + 5, end_at=T0 + 10)
    schedule(ctx, booking_id="after", room_id="r-turn", start_at=T0 + 10.5, end_at=T0 + 20)
    clock.set(T0 + 5)
    perform_batch(ctx, InProcessRunner(ctx).claim())
    assert ctx.reader.booking("before").state == "recording"  # type: ignore[union-attr]
    clock.set(T0 + 9)
    [stop] = InProcessRunner(ctx, ahead_s=1.0).claim()
    stop_plan = prepare(ctx, [stop])[stop]
    stopping = firing_module.arm(ctx, stop, stop_plan)
    assert stopping.grant is not None and stopping.grant.kind == "stop"
    clock.set(T0 + 9.5)
    [start] = InProcessRunner(ctx, ahead_s=1.0).claim()
    start_plan = prepare(ctx, [start])[start]
    # Armed, the booking would wait for the stop and its start follow the stop's reply at
    # once, before T0+10.5.
    assert firing_module.arm(ctx, start, start_plan).deferred
    clock.set(T0 + 10)
    [stopped] = run_operation(ctx, stopping.grant, stopping.holders, stop_plan.call)
    ctx.leases.release_attempt(stopping.held)  # type: ignore[arg-type]
    assert (
        stopped["verdict"] == "confirmed"
        and vendor.journal("startrecord")[-1]["params"]["ArRoomID"] == "r-turn"
    )  # only the first booking's start so far
    summary = firing_module._perform_at_due(ctx, start, start_plan)
    operations = summary["operations"]
    assert [op["kind"] for op in operations] == ["start"]
    assert operations[0]["sent_at"] >= T0 + 10.5
    assert ctx.reader.booking("after").state == "recording"  # type: ignore[union-attr]
    starts = [e for e in vendor.journal("startrecord") if e["params"]["ArRoomID"] == "r-turn"]
    assert len(starts) == 2

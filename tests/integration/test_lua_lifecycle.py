"""Each lifecycle Lua script hammered from several processes at once, on the real Redis.

The property every test checks: whatever the interleaving, each action is claimed once, each
event applies whole, each action applies once, each call attempt is handed out once, and each
attempt is settled once.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import redis

from schedules.keys import LifecycleKeys
from schedules.state import StateReader
from schedules.store import LifecycleStore

pytestmark = pytest.mark.integration

PROCESSES = 4
NOW = 2_000_000_000.0
LEASE = 5.0
_mp = multiprocessing.get_context("fork")


def _store() -> LifecycleStore:
    client = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
    return LifecycleStore(client, LifecycleKeys(os.environ["REDIS_KEY_PREFIX"]))


def _hammer(target: Callable[..., Any], args: list[tuple[Any, ...]]) -> list[Any]:
    """Run ``target(barrier, *a)`` in one process per ``a``, all released together; collect
    what each returns (JSON) in order."""
    barrier = _mp.Barrier(len(args))
    queue = _mp.Queue()

    def child(index: int, extra: tuple[Any, ...]) -> None:
        try:
            queue.put((index, json.dumps(target(barrier, *extra))))
        except BaseException as exc:  # the parent reports it
            queue.put((index, json.dumps({"error": repr(exc)})))

    processes = [_mp.Process(target=child, args=(i, a)) for i, a in enumerate(args)]
    for process in processes:
        process.start()
    results = dict(queue.get(timeout=60) for _ in processes)
    for process in processes:
        process.join(10)
    out = [json.loads(results[i]) for i in range(len(args))]
    errors = [o for o in out if isinstance(o, dict) and "error" in o]
    assert not errors, errors
    return out


def _schedule(
    store: LifecycleStore,
    booking_id: str,
    room: str,
    start: float,
    end: float,
    updated_at: float | None = None,
) -> Any:
    return store.apply_event(
        "schedule",
        booking_id,
        now=NOW,
        updated_at=updated_at,
        room_id=room,
        start_at=start,
        end_at=end,
        params={"user_data": None},
        request={"task": "recordings.schedule", "kwargs": {"booking_id": booking_id}},
    )


# -- claim_due.lua ---------------------------------------------------------------------------------


def _claim_all(barrier: Any, now: float, ahead: float = 0.0) -> dict[str, Any]:
    store = _store()
    barrier.wait()
    claimed: list[str] = []
    reissued = 0
    while True:
        claim = store.claim_due(now=now, lease_s=LEASE, limit=37, ahead_s=ahead)
        claimed.extend(claim.actions)
        reissued += claim.reissued
        if not claim.actions:
            return {"claimed": claimed, "reissued": reissued}


def test_claim_due_gives_each_due_action_to_exactly_one_claimer(
    redis_client: redis.Redis,
) -> None:
    store = _store()
    members = {f"start:b{i}:1": NOW - random.random() * 100 for i in range(3000)}
    redis_client.zadd(store.keys.due, members)
    redis_client.zadd(store.keys.due, {"start:future:1": NOW + 60})

    first = _hammer(_claim_all, [(NOW,)] * PROCESSES)
    claimed = [a for r in first for a in r["claimed"]]
    assert Counter(claimed).most_common(1)[0][1] == 1
    assert set(claimed) == set(members)
    assert all(len(r["claimed"]) > 0 for r in first), "every process took part"
    assert redis_client.zrange(store.keys.due, 0, -1) == ["start:future:1"]
    assert redis_client.zcard(store.keys.inflight) == 3000

    # Within the lease nothing is claimed again; after it, each expired one is re-issued once.
    assert _claim_all(_mp.Barrier(1), NOW + LEASE - 0.01)["claimed"] == []
    second = _hammer(_claim_all, [(NOW + LEASE + 0.01,)] * PROCESSES)
    again = [a for r in second for a in r["claimed"]]
    assert sorted(again) == sorted(members)
    assert sum(r["reissued"] for r in second) == 3000


def test_claim_due_claims_ahead_once_and_leases_past_the_due_time(
    redis_client: redis.Redis,
) -> None:
    store = _store()
    soon = {f"start:s{i}:1": NOW + 1 + i / 1000 for i in range(500)}
    later = {f"start:l{i}:1": NOW + 10 for i in range(10)}
    redis_client.zadd(store.keys.due, {**soon, **later})
    results = _hammer(_claim_all, [(NOW, 2.0)] * PROCESSES)
    claimed = [a for r in results for a in r["claimed"]]
    assert sorted(claimed) == sorted(soon)
    for action, due in soon.items():
        assert redis_client.zscore(store.keys.inflight, action) == pytest.approx(due + LEASE)
    claim = store.claim_due(now=NOW, lease_s=LEASE, limit=10, ahead_s=2.0)
    assert claim.due == [] and claim.next_due == NOW + 10
    assert claim.next_lease == pytest.approx(NOW + 1 + LEASE)


# -- apply_event.lua -------------------------------------------------------------------------------


def _events(barrier: Any, seed: int, stamps: list[float]) -> None:
    store = _store()
    rng = random.Random(seed)
    barrier.wait()
    for stamp in stamps:
        if rng.random() < 0.2:
            store.apply_event("cancel", "b1", now=NOW, updated_at=stamp)
        else:
            start = NOW + rng.randint(10, 100)
            _schedule(store, "b1", rng.choice(["r1", "r2"]), start, start + 30, stamp)


def test_apply_event_applies_concurrent_events_whole_and_the_newest_wins(
    redis_client: redis.Redis,
) -> None:
    store = _store()
    stamps = random.Random(3).sample(range(1_000_000, 2_000_000), PROCESSES * 40)
    batches = [(i, stamps[i::PROCESSES]) for i in range(PROCESSES)]
    _hammer(_events, batches)

    reader = StateReader(redis_client, store.keys)
    booking = reader.booking("b1")
    assert booking is not None
    history = reader.history("b1", limit=len(stamps) + 1)
    assert len(history) == len(stamps)
    assert booking.updated_at == max(stamps)
    newest = max(history, key=lambda e: e["updated_at"])
    assert newest["verdict"] == "applied"
    pending = [m for m in redis_client.zrange(store.keys.due, 0, -1) if ":b1:" in m]
    if newest["event"] == "cancel":
        assert booking.state == "cancelled" and pending == []
    else:
        assert booking.state == "scheduled" and pending == [booking.next_action]
        assert redis_client.zscore(store.keys.due, booking.next_action) == booking.start_due
    # Every event that lost did so because a newer one had been applied before it.
    applied = sorted(e["updated_at"] for e in history if e["verdict"] != "stale")
    for entry in history:
        if entry["verdict"] == "stale":
            assert entry["applied_updated_at"] > entry["updated_at"]
    assert applied[-1] == max(stamps)


# -- apply_action.lua ------------------------------------------------------------------------------


def _apply_all(barrier: Any, seed: int, actions: list[str]) -> list[list[str]]:
    store = _store()
    order = list(actions)
    random.Random(seed).shuffle(order)
    barrier.wait()
    out = []
    for action in order:
        result = store.apply_action(action, now=NOW, lease_s=LEASE, token=f"t{seed}-{action}")
        out.append([action, result.verdict])
    return out


def test_apply_action_applies_each_action_once_and_opens_one_vendor_operation(
    redis_client: redis.Redis,
) -> None:
    store = _store()
    for i in range(200):
        _schedule(store, f"b{i}", "r1", NOW - 1, NOW + 600)
    actions = store.claim_due(now=NOW, lease_s=LEASE, limit=1000).actions
    assert len(actions) == 200

    results = _hammer(_apply_all, [(seed, actions) for seed in range(PROCESSES)])
    effective = [(a, v) for r in results for a, v in r if v != "stale"]
    assert sorted(a for a, _ in effective) == sorted(actions)
    verdicts = Counter(v for _, v in effective)
    assert verdicts["call"] == 1
    assert verdicts["call"] + verdicts["waiting"] == 200
    assert redis_client.scard(store.keys.rhold("r1")) == 200
    assert redis_client.hget(store.keys.room("r1"), "state") == "starting"
    # The next action of every booking is its stop, pending once.
    stops = [m for m in redis_client.zrange(store.keys.due, 0, -1) if m.startswith("stop:")]
    assert len(stops) == 200


# -- begin_call.lua --------------------------------------------------------------------------------


def _begin(barrier: Any, op_id: str, now: float, token: str) -> str:
    store = _store()
    barrier.wait()
    return store.begin_call(op_id, now=now, lease_s=LEASE, token=token).verdict


def test_begin_call_hands_out_one_attempt_however_many_deliveries(
    redis_client: redis.Redis,
) -> None:
    store = _store()
    _schedule(store, "b1", "r1", NOW - 1, NOW + 600)
    [action] = store.claim_due(now=NOW, lease_s=LEASE, limit=10).actions
    grant = store.apply_action(action, now=NOW, lease_s=LEASE, token="first").grant
    assert grant is not None
    now = NOW
    for round_ in range(10):
        now += LEASE + 1  # the open attempt's lease has run out: it was lost
        verdicts = _hammer(_begin, [(grant.op_id, now, f"r{round_}p{p}") for p in range(8)])
        assert Counter(verdicts) == {"call": 1, "busy": 7}, verdicts
    assert int(redis_client.hget(store.keys.room("r1"), "attempts")) == 11
    assert redis_client.hget(store.keys.room("r1"), "uncertain") == "1"


# -- finish_call.lua -------------------------------------------------------------------------------


def _finish(barrier: Any, op_id: str, token: str, outcome: str) -> str:
    from schedules.outcomes import CallGrant

    store = _store()
    grant = CallGrant("call", op_id, "start", {}, 1, False, token)
    barrier.wait()
    settled = store.finish_call(
        grant,
        now=NOW + 1,
        outcome=outcome,
        retry_at=NOW + 2,
        lease_s=LEASE,
        next_token=f"next-{os.getpid()}",
        stop_retry_s=60,
    )
    return settled.verdict


@pytest.mark.parametrize("outcome", ["ok", "retry", "fail"])
def test_finish_call_settles_an_attempt_once(redis_client: redis.Redis, outcome: str) -> None:
    store = _store()
    for round_ in range(5):
        room = f"r{round_}"
        _schedule(store, f"b{round_}", room, NOW - 1, NOW + 600)
        [action] = store.claim_due(now=NOW, lease_s=LEASE, limit=10).actions
        grant = store.apply_action(action, now=NOW, lease_s=LEASE, token=f"tok{round_}").grant
        assert grant is not None
        verdicts = _hammer(_finish, [(grant.op_id, grant.token, outcome)] * 8)
        expected = {"ok": "confirmed", "retry": "retry", "fail": "failed"}[outcome]
        assert Counter(verdicts) == {expected: 1, "stale": 7}, verdicts
    letters = redis_client.zcard(store.keys.dl_index)
    assert letters == (5 if outcome == "fail" else 0)

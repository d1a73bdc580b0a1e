"""Lifecycle keys on the real Redis: every key a script touches is one it was given in KEYS,
every key of a deployment carries its hash tag, the Python side passes the KEYS each script
header documents, and a change between the store's read and its script is answered ``moved``
and called again.
"""

from __future__ import annotations

import os
import random
import re
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
import redis
from redis.commands.core import Script
from redis.crc import key_slot

import worker.redis as loader
from config.settings import load_settings
from schedules import Lifecycle, perform, schedule
from schedules.counts import BookingCounts, scan_counts
from schedules.keys import LifecycleKeys, hash_tag
from schedules.recording_log import RecordingLog
from schedules.store import MOVED_TRIES, KeysMoved, LifecycleStore
from schedules.testing import FakeClock, InProcessRunner
from tests.unit.test_lifecycle_lua_static import SCRIPTS, documented_keys, source
from worker.redis import scripts_for

pytestmark = pytest.mark.integration

T0 = 2_000_000_000.0
LEASE = 2.0

# Run before lib.lua and the script: every redis.call whose key is not in KEYS raises. In
# standalone Redis nothing else would notice a script touching a key it was not given.
ONLY_DECLARED_KEYS = """
local declared_redis = redis
local declared = {}
for _, name in ipairs(KEYS) do declared[name] = true end
local redis = setmetatable({call = function(command, key, ...)
  if not declared[key] then
    error('undeclared key ' .. tostring(key) .. ' in ' .. command)
  end
  return declared_redis.call(command, key, ...)
end}, {__index = declared_redis})
"""
_SCRIPT_NAME = re.compile(r"^-- schedules\.lua/(\w+)\.lua$", re.M)


@pytest.fixture
def key_counts(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[int]]:
    """Scripts loaded from now on refuse undeclared keys; returns, per lifecycle script, the
    numbers of KEYS the Python side passed it."""
    original = loader.script_source
    monkeypatch.setattr(loader, "script_source", lambda p, n: ONLY_DECLARED_KEYS + original(p, n))
    counts: dict[str, set[int]] = defaultdict(set)
    call = Script.__call__

    def counting(self: Script, keys: Any = (), args: Any = (), client: Any = None) -> Any:
        match = _SCRIPT_NAME.search(str(self.script))
        if match:
            counts[match.group(1)].add(len(keys))
        return call(self, keys=keys, args=args, client=client)

    monkeypatch.setattr(Script, "__call__", counting)
    return counts


@pytest.fixture
def ctx(redis_client: redis.Redis, vendor: Any, key_counts: dict[str, set[int]]) -> Lifecycle:
    # A client of its own, so its scripts are loaded with the key check.
    client = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
    settings = load_settings(action_lease_s=LEASE, stop_retry_s=30.0)
    clock = FakeClock(T0)
    return Lifecycle(settings, client, clock=clock, sleep=clock.sleep, rng=random.Random(7))


def book(ctx: Lifecycle, booking_id: str, room: str, start: float, end: float) -> None:
    schedule(ctx, booking_id=booking_id, room_id=room, start_at=T0 + start, end_at=T0 + end)


def run_flows(ctx: Lifecycle, observe: Callable[[], None] = lambda: None) -> None:
    """Every lifecycle script in play: a shared recording (start, join, stop), a missed window
    (dead letter), and a start attempt lost with its worker (issued again) while a second
    booking waits for it. ``observe`` runs after each phase."""
    run = InProcessRunner(ctx)
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    book(ctx, "b1", "r1", 10, 30)
    book(ctx, "b2", "r1", 10, 40)
    book(ctx, "b3", "r2", 4, 8)
    book(ctx, "b4", "r3", 50, 60)
    book(ctx, "b5", "r3", 50, 60)
    observe()
    clock.set(T0 + 9)
    assert [r["verdict"] for r in run.step()] == ["missed"]
    run.run_until(T0 + 20)
    observe()
    run.run_until(T0 + 49)
    clock.set(T0 + 50)
    assert run.claim() == ["start:b4:1", "start:b5:1"]
    lost = ctx.store.apply_action("start:b4:1", now=clock(), lease_s=LEASE, token="lost").grant
    assert lost is not None
    # A heartbeat at the same instant changes no lease (renew_leases.lua never shortens one).
    assert ctx.store.renew_leases(
        now=clock(), lease_s=LEASE, actions=["start:b5:1"], attempts=[(lost.op_id, "lost")]
    ) == ([True], [True])
    assert perform(ctx, "start:b5:1")["verdict"] == "waiting"
    observe()
    run.run_until(T0 + 61)
    observe()
    finals = {"b1": "stopped", "b2": "stopped", "b3": "failed", "b4": "stopped", "b5": "stopped"}
    for booking, final in finals.items():
        view = ctx.reader.booking(booking)
        assert view is not None and view.state == final, booking
    [session] = ctx.recording_log.for_room("r1")
    assert session.booking_ids == ("b1", "b2")
    [session] = ctx.recording_log.for_room("r3")
    assert session.booking_ids == ("b4", "b5")
    # Past the retention by this clock (Redis keeps the hashes: they are scored again).
    counts = BookingCounts(ctx.redis, ctx.keys)
    assert counts.prune(clock() + ctx.store.retention_s + 1).rescored == 5
    assert counts.read() == scan_counts(ctx.redis, ctx.keys, clock()).counts


def test_scripts_touch_only_keys_given_in_keys_and_get_the_keys_their_header_documents(
    ctx: Lifecycle, key_counts: dict[str, set[int]]
) -> None:
    run_flows(ctx)
    assert set(key_counts) == {name.removesuffix(".lua") for name in SCRIPTS}
    for name, counts in key_counts.items():
        fixed, tail = documented_keys(source(name + ".lua"))
        if tail is None:
            assert counts == {fixed}, name
        else:
            assert min(counts) >= fixed, name
    assert max(key_counts["finish_call"]) > 14 + 2, "a settlement with two bookings' keys"


def test_every_key_of_a_booking_flow_shares_the_prefix_hash_tag(
    ctx: Lifecycle, redis_client: redis.Redis
) -> None:
    prefix = ctx.settings.redis_key_prefix
    names: set[str] = set()
    run_flows(ctx, lambda: names.update(redis_client.scan_iter(match=f"*{prefix}*", count=1000)))
    tag = hash_tag(prefix)
    assert {n for n in names if not n.startswith(tag + ":")} == set()
    assert {key_slot(n.encode()) for n in names} == {key_slot(tag.encode())}
    kinds = {re.sub(r"^\{[^}]*\}:(\w+):(\w+).*", r"\1:\2", n) for n in names}
    # rrel lives only from a stop's apply_action to its finish_call, inside one perform.
    assert kinds - {"lc:rrel"} == {
        "lc:due",
        "lc:inflight",
        "lc:b",
        "lc:bh",
        "lc:room",
        "lc:rhold",
        "lc:rhist",
        "lc:active",
        "lc:rooms",
        "lc:outbox",
        "lc:dl",
        "lc:counts",
        "lc:ended",
        "reclog:s",
        "reclog:by_start",
        "reclog:by_stop",
        "reclog:max_span",
        "reclog:room",
        "reclog:open",
    }


# -- read, then script: a change in between is answered "moved" and called again --------------


class Between:
    """A client whose first ``method`` call (or first pipeline run, for "pipeline") runs
    ``change`` right after it returns: another process's script landing between the store's
    read and its own script."""

    def __init__(self, client: redis.Redis, method: str, change: Callable[[], Any]) -> None:
        self._client, self._method, self._change = client, method, change
        self.reads = 0

    def _after(self, result: Any) -> Any:
        self.reads += 1
        if self.reads == 1:
            self._change()
        return result

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name != self._method:
            return attr
        if name == "pipeline":

            def pipeline(*a: Any, **kw: Any) -> Any:
                pipe = attr(*a, **kw)
                execute = pipe.execute
                pipe.execute = lambda: self._after(execute())
                return pipe

            return pipeline
        return lambda *a, **kw: self._after(attr(*a, **kw))


def _store(client: Any, redis_client: redis.Redis, prefix: str) -> LifecycleStore:
    return LifecycleStore(
        client, LifecycleKeys(prefix), scripts=scripts_for(redis_client, "schedules.lua")
    )


def test_a_holder_arriving_between_read_and_settlement_is_settled_too(
    ctx: Lifecycle, redis_client: redis.Redis
) -> None:
    prefix = ctx.settings.redis_key_prefix
    book(ctx, "b1", "r1", 10, 30)
    book(ctx, "b2", "r1", 10, 30)
    grant = ctx.store.apply_action("start:b1:1", now=T0 + 10, lease_s=LEASE, token="t1").grant
    assert grant is not None

    def b2_arrives() -> None:
        assert (
            ctx.store.apply_action("start:b2:1", now=T0 + 10, lease_s=LEASE, token="t2").verdict
            == "waiting"
        )

    racing = Between(redis_client, "pipeline", b2_arrives)
    settled = _store(racing, redis_client, prefix).finish_call(
        grant, now=T0 + 11, outcome="ok", lease_s=LEASE, next_token="n", stop_retry_s=30.0
    )
    assert racing.reads == 2, "read again after moved"
    assert settled.verdict == "confirmed" and sorted(settled.bookings) == ["b1", "b2"]
    for booking in ("b1", "b2"):
        view = ctx.reader.booking(booking)
        assert view is not None and view.state == "recording"


def test_a_booking_whose_room_keeps_changing_is_refused_after_bounded_tries(
    ctx: Lifecycle, redis_client: redis.Redis
) -> None:
    prefix = ctx.settings.redis_key_prefix
    book(ctx, "b1", "r1", 10, 30)
    before = redis_client.hgetall(ctx.keys.booking("b1"))
    keys = LifecycleKeys(prefix)

    class WrongRoom(Between):
        def hget(self, key: str, field: str) -> str:
            self.reads += 1
            return "elsewhere"

    wrong = WrongRoom(redis_client, "", lambda: None)
    with pytest.raises(KeysMoved):
        _store(wrong, redis_client, prefix).apply_action(
            "start:b1:1", now=T0 + 10, lease_s=LEASE, token="t"
        )
    assert wrong.reads == MOVED_TRIES
    assert redis_client.hgetall(ctx.keys.booking("b1")) == before
    assert not redis_client.exists(keys.room("elsewhere"), keys.room("r1"), keys.rhold("r1"))

    # A room read wrong once: the second try has the right one.
    class WrongOnce(Between):
        def hget(self, key: str, field: str) -> str:
            self.reads += 1
            return "elsewhere" if self.reads == 1 else redis_client.hget(key, field)

    once = WrongOnce(redis_client, "", lambda: None)
    result = _store(once, redis_client, prefix).apply_action(
        "start:b1:1", now=T0 + 10, lease_s=LEASE, token="t"
    )
    assert result.verdict == "call" and result.grant is not None
    assert result.grant.room_id == "r1" and once.reads == 2


def test_a_session_replaced_between_read_and_stop_or_add_is_the_one_written(
    ctx: Lifecycle, redis_client: redis.Redis
) -> None:
    prefix = ctx.settings.redis_key_prefix
    log = RecordingLog(redis_client, prefix)
    first = log.started("r1", T0, ["b1"])

    def replaced() -> None:
        log.stopped("r1", T0 + 5)
        log.started("r1", T0 + 6, ["b2"])

    RecordingLog(Between(redis_client, "get", replaced), prefix).add_bookings("r1", ["b3"])
    old, new = log.for_room("r1")
    assert old.session_id == first and old.booking_ids == ("b1",)
    assert new.booking_ids == ("b2", "b3")

    def replaced_again() -> None:
        log.stopped("r1", T0 + 10)
        log.started("r1", T0 + 11, ["b4"])

    closed = RecordingLog(Between(redis_client, "get", replaced_again), prefix).stopped(
        "r1", T0 + 20
    )
    *_, second, third = log.for_room("r1")
    assert (second.stopped_at, third.stopped_at) == (T0 + 10, T0 + 20)
    assert closed == third.session_id


def test_bookings_added_at_once_to_one_session_all_stay(redis_client: redis.Redis) -> None:
    prefix = os.environ["REDIS_KEY_PREFIX"]
    RecordingLog(redis_client, prefix).started("r1", T0, ["b0"])
    threads, per_thread = 8, 25
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def add(n: int) -> None:
        client = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
        log = RecordingLog(client, prefix)
        try:
            barrier.wait()
            for i in range(per_thread):
                log.add_bookings("r1", [f"t{n}-{i}"])
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=add, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert errors == []
    [session] = RecordingLog(redis_client, prefix).for_room("r1")
    expected = {"b0"} | {f"t{n}-{i}" for n in range(threads) for i in range(per_thread)}
    assert set(session.booking_ids) == expected
    assert list(session.booking_ids) == sorted(expected)

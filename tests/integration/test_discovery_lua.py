"""Each discovery Lua script hammered from several processes on real Redis, and the scripts'
"now" taken from ARGV (the caller's clock), never from Redis TIME."""

from __future__ import annotations

import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from worker.discovery.fanout import Outbox
from worker.discovery.keys import DiscoveryKeys
from worker.discovery.lookups import RoomLookups
from worker.redis import redis_from_url, script_source, scripts_for

pytestmark = pytest.mark.integration

PROCESSES = 6
FILES = 300
#: A fixed "now" far from the real time: a script that read TIME instead would be caught.
NOW_S = 1_900_000_000.0
NOW_MS = int(NOW_S * 1000)


def _claim_all(args: tuple[str, str, float]) -> list[str]:
    url, prefix, start_at = args
    client = redis_from_url(url)
    outbox = Outbox(client, DiscoveryKeys(prefix), clock=lambda: NOW_S)
    fids = [f"f{i}" for i in range(FILES)]
    random.shuffle(fids)
    # Loaded before the start, so no process loses the race to its first NOSCRIPT round trip.
    client.script_load(script_source("worker.discovery.lua", "claim"))
    time.sleep(max(0.0, start_at - time.time()))
    return [fid for fid in fids if outbox.claim(fid, '{"status": 2}', "recording.ready", "poll")]


def _lease_all(args: tuple[str, str, float]) -> list[str]:
    url, key, start_at = args
    client = redis_from_url(url)
    script = scripts_for(client, "worker.discovery.lua").lease_due
    taken: list[str] = []
    time.sleep(max(0.0, start_at - time.time()))
    while True:
        batch = script(keys=[key], args=[NOW_MS, 60_000, 7])
        if not batch:
            return taken
        taken.extend(batch)


def _request_all(args: tuple[str, str, float, int]) -> tuple[list[str], dict[str, tuple[int, int]]]:
    url, prefix, start_at, seed = args
    lookups = RoomLookups(redis_from_url(url), DiscoveryKeys(prefix), ttl_s=60)
    rng = random.Random(seed)
    wanted: dict[str, tuple[int, int]] = {}
    created: list[str] = []
    time.sleep(max(0.0, start_at - time.time()))
    for _ in range(40):
        room = f"room-{rng.randrange(5)}"
        beg = rng.randrange(1_000_000, 2_000_000) * 1000
        end = beg + rng.randrange(0, 5_000)
        low, high = wanted.get(room, (beg, end))
        wanted[room] = (min(low, beg), max(high, end))
        if lookups.request(room, beg, end):
            created.append(room)
    return created, wanted


def _warm(_: int) -> int:
    import worker.discovery.fanout  # noqa: F401 - import once, before the race starts

    return 0


@pytest.fixture(scope="module")
def pool() -> Iterator[Any]:
    """Warm spawned processes shared by the tests of this module."""
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as workers:
        workers.map(_warm, range(PROCESSES))
        yield workers


def _start_soon() -> float:
    return time.time() + 0.3


def test_claim_has_exactly_one_winner_per_file(
    redis_client: redis.Redis, settings: Any, pool: Any
) -> None:
    job = (settings.redis_url, settings.redis_key_prefix, _start_soon())
    won = pool.map(_claim_all, [job] * PROCESSES)
    counts = Counter(fid for wins in won for fid in wins)
    assert set(counts) == {f"f{i}" for i in range(FILES)}
    assert set(counts.values()) == {1}
    assert sum(1 for wins in won if wins) > 1  # the processes really raced
    keys = DiscoveryKeys(settings.redis_key_prefix)
    assert redis_client.zcard(keys.outbox_pending) == FILES
    record = redis_client.hgetall(keys.outbox("f0"))
    assert record["state"] == "pending" and record["routing_key"] == "recording.ready"
    assert record["claimed_ms"] == str(NOW_MS)  # whole ms, not a float in e-notation
    lease_ms = Outbox(redis_client, keys).lease_ms
    assert redis_client.zscore(keys.outbox_pending, "f0") == NOW_MS + lease_ms


def test_lease_due_hands_each_due_member_to_one_sweeper(
    redis_client: redis.Redis, settings: Any, pool: Any
) -> None:
    key = DiscoveryKeys(settings.redis_key_prefix).checks
    redis_client.zadd(key, {f"m{i}": NOW_MS - 1000 - i for i in range(200)})
    redis_client.zadd(key, {f"later{i}": NOW_MS + 3_600_000 for i in range(20)})
    taken = pool.map(_lease_all, [(settings.redis_url, key, _start_soon())] * PROCESSES)
    counts = Counter(m for batch in taken for m in batch)
    assert set(counts) == {f"m{i}" for i in range(200)}
    assert set(counts.values()) == {1}
    # Leased members come back after the lease, not before; future ones were never taken.
    scores = dict(redis_client.zrange(key, 0, -1, withscores=True))
    assert all(scores[f"m{i}"] == NOW_MS + 60_000 for i in range(200))
    assert all(scores[f"later{i}"] == NOW_MS + 3_600_000 for i in range(20))


def test_lookup_request_queues_one_lookup_per_room_and_widens_it(
    redis_client: redis.Redis, settings: Any, pool: Any
) -> None:
    start_at = _start_soon()
    prefix = settings.redis_key_prefix
    jobs = [(settings.redis_url, prefix, start_at, seed) for seed in range(PROCESSES)]
    results = pool.map(_request_all, jobs)
    created = Counter(room for made, _ in results for room in made)
    assert set(created.values()) == {1}  # one "new request" per room across all processes
    lookups = RoomLookups(redis_client, DiscoveryKeys(settings.redis_key_prefix), ttl_s=60)
    for room in created:
        window = lookups.window(room)
        assert window is not None
        begs = [w[room][0] for _, w in results if room in w]
        ends = [w[room][1] for _, w in results if room in w]
        assert (window.beg_ms, window.end_ms) == (min(begs), max(ends))


def test_lookup_finish_keeps_a_request_widened_meanwhile(
    redis_client: redis.Redis, settings: Any
) -> None:
    lookups = RoomLookups(redis_client, DiscoveryKeys(settings.redis_key_prefix), ttl_s=60)
    assert lookups.request("r", 1000, 2000)
    served = lookups.window("r")
    assert served is not None
    assert not lookups.request("r", 500, 2000)  # widened while the look-up ran
    newer = lookups.finish("r", served.version)
    assert newer is not None and newer.beg_ms == 500
    assert lookups.finish("r", newer.version) is None
    assert lookups.window("r") is None


class Clock:
    """A settable clock (epoch seconds) for the components under test."""

    def __init__(self, now_s: float) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def test_a_claim_is_due_for_republishing_exactly_one_lease_after_the_argv_now(
    redis_client: redis.Redis, settings: Any
) -> None:
    clock = Clock(NOW_S)
    outbox = Outbox(
        redis_client, DiscoveryKeys(settings.redis_key_prefix), lease_s=1.0, clock=clock
    )
    assert outbox.claim("f", '{"status": 2}', "recording.ready", "poll")
    assert outbox.due() == []
    clock.now_s = NOW_S + 0.999
    assert outbox.due() == []
    clock.now_s = NOW_S + 1.0
    assert outbox.due() == ["f"]
    assert outbox.due() == []  # leased again: due one more lease later
    clock.now_s = NOW_S + 2.0
    assert outbox.due() == ["f"]


def test_lease_due_takes_a_member_at_its_due_time_not_before(
    redis_client: redis.Redis, settings: Any
) -> None:
    key = DiscoveryKeys(settings.redis_key_prefix).awaiting
    lease_due = scripts_for(redis_client, "worker.discovery.lua").lease_due
    redis_client.zadd(key, {"soon": NOW_MS + 1000})
    assert lease_due(keys=[key], args=[NOW_MS, 5000, 10]) == []
    assert lease_due(keys=[key], args=[NOW_MS + 999, 5000, 10]) == []
    assert lease_due(keys=[key], args=[NOW_MS + 1000, 5000, 10]) == ["soon"]
    assert redis_client.zscore(key, "soon") == NOW_MS + 1000 + 5000


@pytest.mark.parametrize("now", ["", "soon", "1e3x"])
def test_a_script_given_no_numeric_now_is_refused(
    redis_client: redis.Redis, settings: Any, now: str
) -> None:
    keys = DiscoveryKeys(settings.redis_key_prefix)
    scripts = scripts_for(redis_client, "worker.discovery.lua")
    with pytest.raises(redis.ResponseError, match="now_ms must be epoch milliseconds"):
        scripts.lease_due(keys=[keys.checks], args=[now, 1000, 10])
    with pytest.raises(redis.ResponseError, match="now_ms must be epoch milliseconds"):
        scripts.claim(keys=[keys.outbox("f"), keys.outbox_pending], args=[now, "f", "{}"])
    assert not redis_client.exists(keys.outbox("f"))

"""The global query limiter on real Redis, hammered by several processes against the simulator."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import pytest
import redis

from worker.discovery.keys import DiscoveryKeys
from worker.discovery.limiter import SlidingWindowLimiter
from worker.redis import redis_from_url
from worker.simulator.journal import max_in_window

pytestmark = pytest.mark.integration

LIMIT = 5
PERIOD_S = 1.0
MARGIN_S = 0.02
PROCESSES = 8
RUN_S = 4.0


def _import_everything() -> None:
    """Pool initializer: pay the imports before the race starts."""
    import worker.discovery.limiter  # noqa: F401
    from config import settings  # noqa: F401


def _ready(_: int) -> bool:
    # Busy long enough that every process of the pool takes one of these.
    time.sleep(0.3)
    return True


def _hammer(args: dict[str, Any]) -> dict[str, int]:
    """One process: call getVodListByTime through the gate until the deadline."""
    from config.settings import load_settings
    from worker.discovery.limiter import gated_client
    from worker.errors import BudgetExhausted, RateLimited

    settings = load_settings(**args["settings"])
    limiter = SlidingWindowLimiter(
        redis_from_url(settings.redis_url),
        DiscoveryKeys(settings.redis_key_prefix),
        limit=LIMIT,
        period_s=PERIOD_S,
        margin_s=MARGIN_S,
    )
    client = gated_client(settings, limiter, reserve=args["reserve"])
    counts = {"ok": 0, "denied": 0, "rate_limited": 0}
    time.sleep(max(0.0, args["start_at"] - time.time()))
    now_ms = int(time.time() * 1000)
    while time.time() < args["stop_at"]:
        try:
            client.list_by_time(now_ms - 60_000, now_ms, page_max=10)
            counts["ok"] += 1
        except BudgetExhausted as exc:
            counts["denied"] += 1
            time.sleep(min(exc.retry_after, max(0.0, args["stop_at"] - time.time())))
        except RateLimited:
            counts["rate_limited"] += 1
    return counts


def _settings_env(settings: Any) -> dict[str, Any]:
    return {
        "anyrtc_app_id": settings.anyrtc_app_id,
        "anyrtc_vod_token": settings.anyrtc_vod_token.get_secret_value(),
        "anyrtc_vod_api_url": settings.anyrtc_vod_api_url,
        "anyrtc_record_api_url": settings.anyrtc_record_api_url,
        "redis_url": settings.redis_url,
        "redis_key_prefix": settings.redis_key_prefix,
        "anyrtc_http_timeout_s": settings.anyrtc_http_timeout_s,
    }


def test_eight_processes_never_exceed_the_vendor_window(
    redis_client: redis.Redis, sim: Any, settings: Any
) -> None:
    sim.configure(rate_limit=LIMIT, rate_period_s=PERIOD_S)
    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES, initializer=_import_everything) as pool:
        pool.map(_ready, range(PROCESSES), chunksize=1)
        start_at = time.time() + 0.5
        jobs = [
            {
                "settings": _settings_env(settings),
                # Half the processes ask like room look-ups do (leaving a slot to the poll).
                "reserve": i % 2,
                "start_at": start_at,
                "stop_at": start_at + RUN_S,
            }
            for i in range(PROCESSES)
        ]
        results = pool.map(_hammer, jobs, chunksize=1)

    entries = sim.journal("getVodListByTime")
    admitted = [e["time"] for e in entries if e["code"] == 200]
    assert [e for e in entries if e["code"] == 299] == []
    assert sum(r["rate_limited"] for r in results) == 0
    assert sum(r["ok"] for r in results) == len(admitted)
    assert len(admitted) > 2 * LIMIT  # several windows were really contended
    assert sum(r["denied"] for r in results) > 0
    assert max_in_window(admitted, PERIOD_S) <= LIMIT


@pytest.fixture
def limiter(redis_client: redis.Redis, settings: Any) -> SlidingWindowLimiter:
    return SlidingWindowLimiter(
        redis_from_url(settings.redis_url),
        DiscoveryKeys(settings.redis_key_prefix),
        limit=3,
        period_s=0.5,
        margin_s=0.0,
        grace_s=0.3,
    )


def test_denied_caller_learns_when_the_oldest_slot_frees(limiter: SlidingWindowLimiter) -> None:
    decisions = [limiter.acquire("app") for _ in range(3)]
    assert all(d.admitted for d in decisions)
    for d in decisions:
        limiter.complete("app", d.token)
    denied = limiter.acquire("app")
    assert not denied.admitted
    assert 0 < denied.wait_s <= 0.5
    assert isinstance(denied.wait_s, float) and denied.taken == 3
    time.sleep(denied.wait_s + 0.01)
    assert limiter.acquire("app").admitted


def test_members_are_unique_within_one_millisecond(
    limiter: SlidingWindowLimiter, redis_client: redis.Redis
) -> None:
    pipe_client = limiter.client
    key = limiter.keys.budget("same-ms")
    # Three acquisitions in one pipeline run inside the same millisecond: all must be logged.
    script = limiter._script
    pipe = pipe_client.pipeline()
    for token in ("a", "b", "c"):
        script(keys=[key], args=["acquire", 3, 500, 0, token, 300], client=pipe)
    results = pipe.execute()
    assert [r[0] for r in results] == [1, 1, 1]
    assert redis_client.zcard(key) == 3


def test_reserve_leaves_the_last_slot_to_the_poll(limiter: SlidingWindowLimiter) -> None:
    assert limiter.acquire("app", reserve=1).admitted
    assert limiter.acquire("app", reserve=1).admitted
    low = limiter.acquire("app", reserve=1)
    assert not low.admitted and low.wait_s > 0
    assert limiter.acquire("app").admitted  # the poll still gets the reserved slot
    assert not limiter.acquire("app").admitted


def test_reserve_is_clamped_so_a_budget_of_one_still_serves_lookups(
    redis_client: redis.Redis, settings: Any
) -> None:
    single = SlidingWindowLimiter(
        redis_from_url(settings.redis_url),
        DiscoveryKeys(settings.redis_key_prefix),
        limit=1,
        period_s=0.5,
    )
    assert single.acquire("app", reserve=1).admitted


def test_close_admits_nothing_for_a_whole_window(limiter: SlidingWindowLimiter) -> None:
    window = limiter.close("app")
    assert window == pytest.approx(0.5)
    denied = limiter.acquire("app")
    assert not denied.admitted and 0.4 < denied.wait_s <= 0.5
    time.sleep(denied.wait_s + 0.01)
    assert limiter.acquire("app").admitted


def test_a_call_counts_from_when_it_finished(limiter: SlidingWindowLimiter) -> None:
    first = limiter.acquire("app")
    for _ in range(2):
        limiter.complete("app", limiter.acquire("app").token)
    time.sleep(0.2)
    limiter.complete("app", first.token)  # a slow call: its slot moves to its end
    denied = limiter.acquire("app")
    assert not denied.admitted
    time.sleep(denied.wait_s + 0.01)
    assert limiter.acquire("app").admitted  # the two quick ones freed first
    assert limiter.acquire("app").admitted
    again = limiter.acquire("app")
    assert not again.admitted and again.wait_s >= 0.1  # the slow one frees later


def test_a_dead_callers_slot_frees_after_the_grace(limiter: SlidingWindowLimiter) -> None:
    for _ in range(3):
        assert limiter.acquire("app").admitted  # never completed: the callers "died"
    time.sleep(0.5)
    denied = limiter.acquire("app")
    assert not denied.admitted and 0 < denied.wait_s <= 0.3
    time.sleep(denied.wait_s + 0.01)
    assert limiter.acquire("app").admitted


def test_app_ids_have_separate_budgets(limiter: SlidingWindowLimiter) -> None:
    for _ in range(3):
        assert limiter.acquire("one").admitted
    assert not limiter.acquire("one").admitted
    assert limiter.acquire("two").admitted


def test_bad_configuration_is_refused(redis_client: redis.Redis) -> None:
    with pytest.raises(ValueError):
        SlidingWindowLimiter(redis_client, DiscoveryKeys("x"), limit=0, period_s=1)
    with pytest.raises(ValueError):
        SlidingWindowLimiter(redis_client, DiscoveryKeys("x"), limit=1, period_s=0)

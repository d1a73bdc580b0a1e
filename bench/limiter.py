"""Benchmark: the global query limiter under 8 competing processes.

Starts its own simulator (same budget as the limiter), runs N processes that call
getVodListByTime through the Redis gate as fast as the budget lets them for a fixed time, then
prints what the *simulator* saw arrive: calls admitted, 299s, the most calls in any window of
the vendor's period, and the utilisation of the budget.

    .venv/bin/python bench/limiter.py [--seconds 20] [--processes 8] [--limit 5] [--period 2]
                                      [--margin 0.02] [--redis redis://127.0.0.1:6379/15]

Needs Redis on 127.0.0.1:6379; uses its own key prefix and deletes its keys when done.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import statistics
import time
import uuid
from typing import Any

from config.settings import load_settings
from worker.discovery.keys import DiscoveryKeys
from worker.discovery.limiter import SlidingWindowLimiter, gated_client
from worker.errors import BudgetExhausted, RateLimited
from worker.redis import redis_from_url
from worker.simulator import running_simulator
from worker.simulator.journal import max_in_window

APP_ID = "bench-app"
VOD_TOKEN = "bench-vod-token"


def _import_everything() -> None:
    """Pool initializer: pay the imports before the race starts."""
    import worker.discovery.limiter  # noqa: F401
    from config import settings  # noqa: F401


def _ready(_: int) -> bool:
    # Busy long enough that every process of the pool takes one of these.
    time.sleep(0.3)
    return True


def hammer(job: dict[str, Any]) -> dict[str, int]:
    """One process: query through the gate until the deadline; sleep when denied."""
    settings = load_settings(**job["settings"])
    limiter = SlidingWindowLimiter(
        redis_from_url(settings.redis_url),
        DiscoveryKeys(settings.redis_key_prefix),
        limit=job["limit"],
        period_s=job["period"],
        margin_s=job["margin"],
    )
    client = gated_client(settings, limiter, reserve=job["reserve"])
    counts = {"ok": 0, "denied": 0, "rate_limited": 0}
    time.sleep(max(0.0, job["start_at"] - time.time()))
    while time.time() < job["stop_at"]:
        now_ms = int(time.time() * 1000)
        try:
            client.list_by_time(now_ms - 60_000, now_ms, page_max=10)
            counts["ok"] += 1
        except BudgetExhausted as exc:
            counts["denied"] += 1
            time.sleep(min(exc.retry_after, max(0.0, job["stop_at"] - time.time())))
        except RateLimited:
            counts["rate_limited"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--limit", type=int, default=5)
    parser.add_argument("--period", type=float, default=2.0)
    parser.add_argument("--margin", type=float, default=0.02)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()

    prefix = f"bench-limiter-{uuid.uuid4().hex[:8]}"
    redis = redis_from_url(args.redis)
    with running_simulator(
        app_id=APP_ID, vod_token=VOD_TOKEN, rate_limit=args.limit, rate_period_s=args.period
    ) as sim:
        base = {
            "anyrtc_app_id": APP_ID,
            "anyrtc_vod_token": VOD_TOKEN,
            "anyrtc_vod_api_url": sim.vod_api_url,
            "anyrtc_record_api_url": sim.record_api_url,
            "redis_url": args.redis,
            "redis_key_prefix": prefix,
            "anyrtc_http_timeout_s": 5.0,
        }
        context = multiprocessing.get_context("spawn")
        pool = context.Pool(args.processes, initializer=_import_everything)
        pool.map(_ready, range(args.processes), chunksize=1)
        start_at = time.time() + 0.5
        jobs = [
            {
                "settings": base,
                "limit": args.limit,
                "period": args.period,
                "margin": args.margin,
                "reserve": i % 2,  # half ask like room look-ups, half like the poll
                "start_at": start_at,
                "stop_at": start_at + args.seconds,
            }
            for i in range(args.processes)
        ]
        try:
            with pool:
                results = pool.map(hammer, jobs, chunksize=1)
            entries = sim.journal("getVodListByTime")
        finally:
            for key in redis.scan_iter(match=f"*{prefix}*"):
                redis.delete(key)

    arrivals = sorted(e["time"] for e in entries if e["code"] == 200)
    refused = sum(1 for e in entries if e["code"] == 299)
    t0 = start_at
    in_run = [t for t in arrivals if t0 <= t < t0 + args.seconds]
    budget = args.limit * math.ceil(args.seconds / args.period)
    gaps = [b - a for a, b in zip(arrivals, arrivals[args.limit :], strict=False)]
    steady = (
        (len(arrivals) - args.limit) * args.period / (args.limit * (arrivals[-1] - arrivals[0]))
        if len(arrivals) > args.limit and arrivals[-1] > arrivals[0]
        else 0.0
    )
    window = f"{args.period:g} s"
    row(
        "budget",
        f"{args.limit} calls per {window} (limiter window {args.period + args.margin:g} s)",
    )
    row("load", f"{args.processes} processes for {args.seconds:g} s")
    row("calls made", f"{len(arrivals)} admitted by the vendor, {refused} answered 299")
    row("denied by limiter", f"{sum(r['denied'] for r in results)} (each retried after its wait)")
    row(f"max in any {window}", f"{max_in_window(arrivals, args.period)} (limit {args.limit})")
    row(
        "utilisation",
        f"{100 * len(in_run) / budget:.1f} % ({len(in_run)} of the {budget} calls "
        f"the budget allows in {args.seconds:g} s)",
    )
    row("steady-state rate", f"{100 * steady:.1f} % of {args.limit} per {window}")
    if gaps:
        row(
            f"call i -> i+{args.limit}",
            f"min {min(gaps):.3f} s, median "
            f"{statistics.median(gaps):.3f} s (must stay >= {window})",
        )
    row("calls per process", str([r["ok"] for r in results]))


def row(label: str, value: str) -> None:
    print(f"{label:<22}{value}")


if __name__ == "__main__":
    main()

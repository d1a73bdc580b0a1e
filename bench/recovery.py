"""Recovery at default settings: every worker killed mid-burst, then Redis down for 10 s.

Two faults, each on a burst of 40 starts spread over 6 s, measured from the simulator's journal
(when each ``startrecord`` call arrived):

1. kill: both lifecycle workers SIGKILLed in the middle of the burst and restarted at once;
2. redis: the Redis server stopped for 10 s across the burst's due times, then started again
   (append-only on, so nothing written is lost).

For each: actions affected (due after the fault began and not yet called), their lateness after
the worker / Redis was back (p50, max: first call minus the later of its due time and the
moment of recovery), duplicate calls, and missed starts. Default product settings
(``ANYRTC_HTTP_TIMEOUT_S=10``, ``ACTION_LEASE_S=3``, ``DISPATCH_AHEAD_S=2``). Starts a Redis of
its own on a free port, its own simulator and workers; finishes by itself::

    .venv/bin/python bench/recovery.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.own_redis import OwnRedis  # noqa: E402
from tests.support.workers import WorkerProcess  # noqa: E402

APP_ID = "recovery-app"
BURST = 40
SPREAD_S = 6.0


def schedule_burst(ctx: Any, tag: str, first_due: float) -> dict[str, float]:
    """40 windows whose starts are spread over 6 s from ``first_due``; room -> due time."""
    due = {}
    for i in range(BURST):
        room = f"{tag}-{i}"
        at = first_due + SPREAD_S * i / (BURST - 1)
        ctx.store.apply_event(
            "schedule", f"b-{room}", now=time.time(), room_id=room, start_at=at, end_at=at + 120
        )
        due[room] = at
    return due


def measure(sim: Any, due: dict[str, float], fault_at: float, back_at: float) -> dict[str, Any]:
    deadline = max(due.values()) + 30
    while time.time() < deadline:
        seen = {e["params"].get("ArRoomID") for e in sim.journal("startrecord")}
        if set(due) <= seen:
            break
        time.sleep(0.2)
    time.sleep(2.0)  # stragglers (duplicates)
    calls = [e for e in sim.journal("startrecord") if e["params"].get("ArRoomID") in due]
    per_room = Counter(e["params"]["ArRoomID"] for e in calls)
    first: dict[str, float] = {}
    for entry in sorted(calls, key=lambda e: e["time"]):
        first.setdefault(entry["params"]["ArRoomID"], entry["time"])
    affected = [r for r in due if due[r] >= fault_at or first.get(r, float("inf")) >= fault_at]
    late = sorted(first[r] - max(due[r], back_at) for r in affected if r in first)
    return {
        "affected": len(affected),
        "p50": statistics.median(late) if late else float("nan"),
        "max": late[-1] if late else float("nan"),
        "duplicates": sum(n - 1 for n in per_room.values()),
        "missed": len(set(due) - set(per_room)),
        "early": sum(1 for e in calls if e["time"] < due[e["params"]["ArRoomID"]]),
    }


def start_workers(env: dict[str, str], count: int) -> list[WorkerProcess]:
    workers = [
        WorkerProcess(
            queues=("lifecycle",), concurrency=64, env=env, name=f"rec-{i}-{uuid.uuid4().hex[:4]}"
        )
        for i in range(count)
    ]
    for worker in workers:
        worker.start(timeout_s=60)
    return workers


def run_kill(ctx: Any, sim: Any, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    workers = start_workers(env, args.workers)
    try:
        first_due = time.time() + 4.0
        due = schedule_burst(ctx, "kill", first_due)
        time.sleep(max(0.0, first_due + SPREAD_S / 2 - time.time()))
        fault_at = time.time()
        for worker in workers:
            worker.kill()
        for worker in workers:
            worker.log_path.unlink(missing_ok=True)
        workers = start_workers(env, args.workers)
        back_at = time.time()
        result = measure(sim, due, fault_at, back_at)
        result["down_s"] = back_at - fault_at
        return result
    finally:
        for worker in workers:
            worker.kill()
            worker.log_path.unlink(missing_ok=True)


def run_redis(
    ctx: Any, sim: Any, env: dict[str, str], own: OwnRedis, args: argparse.Namespace
) -> dict[str, Any]:
    workers = start_workers(env, args.workers)
    try:
        first_due = time.time() + 4.0
        due = schedule_burst(ctx, "redis", first_due)
        time.sleep(max(0.0, first_due - 1.0 - time.time()))
        fault_at = time.time()
        own.stop()
        time.sleep(args.outage_s)
        own.start()
        back_at = time.time()
        result = measure(sim, due, fault_at, back_at)
        result["down_s"] = back_at - fault_at
        logs = "".join(w.log() for w in workers)
        if args.show_logs:
            print(logs[-args.show_logs :])
        result["lost_lines"] = logs.count("dispatcher lost Redis")
        result["tracebacks"] = logs.count("Traceback")
        return result
    finally:
        for worker in workers:
            worker.kill()
            worker.log_path.unlink(missing_ok=True)


def report(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"recovery: {BURST} starts over {SPREAD_S:.0f}s per fault, default settings "
        "(HTTP timeout 10 s, ACTION_LEASE_S 3 s, DISPATCH_AHEAD_S 2 s)",
        f"{'fault':<28}{'down s':>8}{'affected':>10}{'p50 s':>8}{'max s':>8}"
        f"{'dupl.':>7}{'missed':>8}{'early':>7}",
    ]
    for name, r in results.items():
        lines.append(
            f"{name:<28}{r['down_s']:>8.1f}{r['affected']:>10d}{r['p50']:>8.2f}{r['max']:>8.2f}"
            f"{r['duplicates']:>7d}{r['missed']:>8d}{r['early']:>7d}"
        )
    redis_run = results.get("redis stopped")
    if redis_run:
        lines.append(
            f"dispatcher 'lost Redis' warnings: {redis_run['lost_lines']} "
            f"(one per worker expected), tracebacks in worker logs: {redis_run['tracebacks']}"
        )
    lines.append("lateness: first call minus the later of its due time and the recovery moment")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="lifecycle worker processes")
    parser.add_argument("--outage-s", type=float, default=10.0, help="how long Redis is down")
    parser.add_argument("--latency", type=float, default=0.1, help="simulator latency (s)")
    parser.add_argument("--show-logs", type=int, default=0, help="print this much of the logs")
    args = parser.parse_args(argv)

    from worker.simulator import running_simulator

    own = OwnRedis().start()
    token = uuid.uuid4().hex
    results: dict[str, dict[str, Any]] = {}
    try:
        with running_simulator(
            app_id=APP_ID, vod_token=token, latency_s=args.latency, seed=1
        ) as sim:
            env = {
                **os.environ,
                "ANYRTC_APP_ID": APP_ID,
                "ANYRTC_VOD_TOKEN": token,
                "ANYRTC_RECORD_API_URL": sim.record_api_url,
                "ANYRTC_VOD_API_URL": sim.vod_api_url,
                "REDIS_URL": own.url,
                "REDIS_KEY_PREFIX": f"rec-{uuid.uuid4().hex[:8]}",
                "LOG_LEVEL": "INFO",  # workers are ready when their log says so
            }
            for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "ANYRTC_HTTP_TIMEOUT_S"):
                env.pop(name, None)
            for name in ("ACTION_LEASE_S", "DISPATCH_AHEAD_S", "DISPATCH_INTERVAL_S"):
                env.pop(name, None)
            os.environ.clear()
            os.environ.update(env)

            from config.settings import load_settings
            from schedules import Lifecycle
            from worker.redis import redis_from_url

            ctx = Lifecycle(load_settings(), redis_from_url(own.url))
            results["workers killed mid-burst"] = run_kill(ctx, sim, env, args)
            sim.reset()
            results["redis stopped"] = run_redis(ctx, sim, env, own, args)
    finally:
        own.close()
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Scale: N pending bookings spread over 30 days at the top of the hour, on a Redis of its own.

Prints, through the same code path as ``recordings.schedule`` (``schedules.events.schedule``):

- Redis memory per pending booking (``used_memory`` before and after, divided by N);
- the schedule rate (events per second, one client, one after the other);
- the empty dispatcher tick (nothing due) at N pending: median and max of 200 ticks;
- the tick that claims 1,000 actions due at the same second;
- what one booking costs (MEMORY USAGE of its keys) and the due set per pending action;
- memory per booking after those 1,000 started (the simulator answers at once) and after they
  stopped and left their histories;
- the ``/metrics`` gauges read (``read_snapshot``: the kept per-state counts, median of 20)
  against the full SCAN of every booking hash it replaced, and a prune of the 1,000 finished
  bookings once expired.

Starts its own ``redis-server`` on a free port (no persistence) and a simulator, and stops both::

    .venv/bin/python bench/scale.py                     # 100,000 bookings
    .venv/bin/python bench/scale.py --bookings 1000000

Targets (issue "Scale and speed"): at most 1 KB of Redis per pending booking, an empty tick under
1 ms at 1,000,000 pending, 1,000 due claimed in under 50 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

HOUR = 3600.0
DAYS = 30
HERD = 1000
APP_ID = "scale-app"
VOD_TOKEN = "scale-vod-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def own_redis() -> Iterator[redis.Redis]:
    """A redis-server of this bench's own: memory figures count nothing else."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="scale-redis-")
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port, decode_responses=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield client
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def costs(client: redis.Redis, ctx: Any, booking_id: str) -> str:
    """MEMORY USAGE of one booking's keys (hash and history), with the hash's encoding."""
    hash_key, hist_key = ctx.keys.booking(booking_id), ctx.keys.bhist(booking_id)
    size = client.memory_usage(hash_key, samples=0) or 0
    encoding, fields = client.object("encoding", hash_key), client.hlen(hash_key)
    parts = [f"booking hash {size:,} B ({encoding}, {fields} fields)"]
    if client.exists(hist_key):
        parts.append(f"history {client.memory_usage(hist_key, samples=0) or 0:,} B "
                     f"({client.llen(hist_key)} entries)")  # fmt: skip
    else:
        parts.append("no history list")
    return ", ".join(parts)


def percentile_ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=100_000)
    args = parser.parse_args()
    n = args.bookings

    from worker.simulator import running_simulator

    with own_redis() as client, running_simulator(
        app_id=APP_ID, vod_token=VOD_TOKEN, latency_s=0.0, jitter_s=0.0, error_rate=0.0,
        http_error_rate=0.0, timeout_rate=0.0, drop_rate=0.0,
    ) as sim:  # fmt: skip
        os.environ.update(
            {
                "ANYRTC_APP_ID": APP_ID,
                "ANYRTC_VOD_TOKEN": VOD_TOKEN,
                "ANYRTC_RECORD_API_URL": sim.record_api_url,
                "ANYRTC_VOD_API_URL": sim.vod_api_url,
                "REDIS_URL": f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0",
                "REDIS_KEY_PREFIX": "scale",
            }
        )
        from config.settings import load_settings
        from schedules.actions import perform
        from schedules.context import Lifecycle
        from schedules.dispatcher import Dispatcher
        from schedules.events import schedule
        from schedules.testing import FakeClock

        settings = load_settings()
        # The first booking hour lies a day ahead of "now", so nothing is due while scheduling.
        now = (int(time.time() // HOUR) + 24) * HOUR - 24 * HOUR
        clock = FakeClock(now)
        ctx = Lifecycle(settings, client, clock=clock)
        first_hour = now + 24 * HOUR

        before = used_memory(client)
        started = time.perf_counter()
        for i in range(n):
            start = first_hour + (i % (DAYS * 24)) * HOUR
            schedule(ctx, booking_id=f"booking-{i}", room_id=f"room-{i}", start_at=start,
                     end_at=start + HOUR, user_data={"n": i}, updated_at=now)  # fmt: skip
        elapsed = time.perf_counter() - started
        pending = used_memory(client) - before
        print(f"bookings             {n:,} pending over {DAYS} days")
        print(f"memory               {pending / n:,.0f} B per pending booking "
              f"({pending / 2**20:,.1f} MiB in all)")  # fmt: skip
        print(f"schedule rate        {n / elapsed:,.0f} events/s ({elapsed:.1f} s)")
        print(f"keys                 {client.dbsize():,} in all; {costs(client, ctx, 'booking-7')}")
        due_cost = client.memory_usage(ctx.keys.due, samples=0) or 0
        print(f"due zset             {due_cost / max(1, client.zcard(ctx.keys.due)):,.0f} B "
              f"per pending action ({client.object('encoding', ctx.keys.due)})")  # fmt: skip

        published: list[str] = []

        def collect(pairs: list[tuple[str, float]], _now: float) -> int:
            published.extend(action for action, _ in pairs)
            return 0

        dispatcher = Dispatcher(ctx.store, collect, lease_s=ctx.lease_s, clock=clock)
        ticks = []
        for _ in range(200):
            t0 = time.perf_counter()
            dispatcher.tick()
            ticks.append(time.perf_counter() - t0)
        assert not published, "nothing is due yet"
        print(f"empty tick           median {percentile_ms(ticks, 0.5):.3f} ms, "
              f"max {max(ticks) * 1000:.3f} ms at {n:,} pending")  # fmt: skip

        herd_at = now + HOUR  # before every other booking: only the herd is due
        herd = [f"herd-{i}" for i in range(HERD)]
        for booking_id in herd:
            schedule(ctx, booking_id=booking_id, room_id=f"room-{booking_id}", start_at=herd_at,
                     end_at=herd_at + 60, updated_at=now)  # fmt: skip
        clock.set(herd_at)
        t0 = time.perf_counter()
        dispatcher.tick()
        claim_s = time.perf_counter() - t0
        print(f"herd tick            {len(published):,} due claimed in {claim_s * 1000:.1f} ms")

        for action in published:
            perform(ctx, action)
        running = used_memory(client) - before
        print(f"after the herd ran   {running / (n + HERD):,.0f} B per booking")
        clock.set(herd_at + 61)
        published.clear()
        dispatcher.tick()
        for action in published:
            perform(ctx, action)
        stopped = sum(1 for b in herd if ctx.reader.booking(b).state == "stopped")
        done = used_memory(client) - before
        print(f"after they stopped   {done / (n + HERD):,.0f} B per booking "
              f"({stopped:,} of {HERD:,} stopped)")  # fmt: skip
        days = ctx.store.retention_s // 86400
        print(f"a stopped booking    {costs(client, ctx, herd[7])} (kept {days} days, "
              f"history trimmed to {ctx.store.history_max} entries)")  # fmt: skip
        scrape_and_prune(ctx, herd)


def scrape_and_prune(ctx: Any, herd: list[str]) -> None:
    """Time the gauges read against the full scan, then expire the herd and prune it."""
    from schedules.counts import BookingCounts, scan_counts
    from worker.metrics.gauges import read_snapshot

    client, clock = ctx.redis, ctx.clock
    reads = []
    for _ in range(20):
        t0 = time.perf_counter()
        snapshot = read_snapshot(client, ctx.settings.redis_key_prefix, clock())
        reads.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    scanned = scan_counts(client, ctx.keys, clock())
    scan_s = time.perf_counter() - t0
    same = "equal" if scanned.counts == snapshot.bookings else "DIFFERENT"
    print(f"metrics read         median {percentile_ms(reads, 0.5):.3f} ms, "
          f"max {max(reads) * 1000:.3f} ms (read_snapshot); full scan {scan_s:.2f} s, "
          f"counts {same}")  # fmt: skip
    # Redis would drop these hashes at the retention's end; the bench's clock jumps there.
    for booking_id in herd:
        client.delete(ctx.keys.booking(booking_id), ctx.keys.bhist(booking_id))
    clock.advance(ctx.store.retention_s + 1)
    counts = BookingCounts(client, ctx.keys)
    t0 = time.perf_counter()
    done = counts.prune(clock(), budget=len(herd))
    prune_s = time.perf_counter() - t0
    left = counts.read()["stopped"]
    print(f"prune of expired     {done.pruned:,} in {prune_s * 1000:.1f} ms "
          f"(stopped counted after: {left})")  # fmt: skip


if __name__ == "__main__":
    main()

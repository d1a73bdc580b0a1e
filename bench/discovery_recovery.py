"""Discovery recovery: files waiting on room look-ups, 20 % vendor faults, every worker killed.

Pairs of rooms start and stop recording at the same instant, so the time list cannot tell their
files apart (correlation is ambiguous) and each file waits for the look-ups of both candidate
rooms. No callback arrives. The simulator answers 20 % of query calls with 501. When the first
room look-up reaches the vendor, both discovery workers are SIGKILLed and two new ones start.

Prints, for each waiting file, the time from "its look-ups were possible" (the moment discovery
queued them: the file was final, listed and found ambiguous; sampled from the ``await``
schedule) to its message, and from its final status to its message; how many were undelivered a
minute after their look-ups were possible; duplicates; wrong rooms.

Default product settings, except the budget period (``--period``, default 10 s instead of the
vendor's 60, and so the poll interval, which follows it): everything else (HTTP timeout 10 s,
``DISCOVERY_LEASE_S`` 3 s, back-off 1..60 s, look-up deadline 900 s) is as shipped::

    .venv/bin/python bench/discovery_recovery.py [--pairs 4] [--period 10] [--faults 0.2]
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from typing import Any

from callbacks import (
    APP_ID,
    VOD_TOKEN,
    Consumer,
    Process,
    bench_env,
    celery_worker,
    cleanup,
    percentile,
    row,
)
from discovery import celery_beat

from config.settings import load_settings
from schedules.recording_log import RecordingLog
from worker.anyrtc.client import AnyRTCClient
from worker.anyrtc.fields import normalize_download_url
from worker.discovery.keys import DiscoveryKeys, file_key_id
from worker.redis import redis_from_url
from worker.simulator import running_simulator

PAIR_GAP_S = 4.0  # > 1 + TIGHT_S: two pairs never look alike
MEETING_S = 5.0
DEADLINE_S = 60.0


class AwaitWatch:
    """Samples the ``await`` schedule: when each file's look-ups were queued (first seen)."""

    def __init__(self, url: str, key: str) -> None:
        self.client = redis_from_url(url)
        self.key = key
        self.first: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            now = time.time()
            for fid in self.client.zrange(self.key, 0, -1):
                self.first.setdefault(fid.decode() if isinstance(fid, bytes) else fid, now)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def kill_all(workers: list[Process]) -> None:
    for worker in workers:
        worker.popen.kill()
        worker.popen.wait(10)
        worker.log_path.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--period", type=float, default=10.0, help="budget period, seconds")
    parser.add_argument("--faults", type=float, default=0.2, help="share of query calls -> 501")
    parser.add_argument("--restart-after", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()

    prefix = f"bench-drec-{uuid.uuid4().hex[:8]}"
    keys = DiscoveryKeys(prefix)
    rooms = [(f"pair{p}-a", f"pair{p}-b") for p in range(args.pairs)]
    kill: dict[str, float] = {}
    with (
        running_simulator(
            app_id=APP_ID,
            vod_token=VOD_TOKEN,
            rate_limit=5,
            rate_period_s=args.period,
            upload_delay_s=1.0,
            transcode_delay_s=5.0,
            error_rate=args.faults,
            fault_endpoints=["getVodListByTime", "getVodInfoByRoomId"],
            seed=16,
        ) as sim,
        tempfile.TemporaryDirectory() as beat_dir,
    ):
        env = bench_env(
            sim, args.redis, prefix, secrets.token_urlsafe(16),
            QUERY_RATE_PERIOD_S=str(args.period),
        )  # fmt: skip
        settings = load_settings(**{k.lower(): v for k, v in env.items()})
        vendor = AnyRTCClient.from_settings(settings)
        log = RecordingLog(redis_from_url(args.redis), prefix)
        workers: list[Process] = []
        beat: Process | None = None
        watch = AwaitWatch(args.redis, keys.awaiting)
        try:
            workers = [celery_worker(env, "query,events", 8) for _ in range(2)]
            consumer = Consumer(args.redis, prefix, f"{prefix}-customer")
            beat = celery_beat(env, beat_dir)
            started = time.time()
            for n, pair in enumerate(rooms):
                time.sleep(max(0.0, started + n * PAIR_GAP_S - time.time()))
                for room in pair:
                    vendor.start_record(room)
                at = time.time()
                for room in pair:
                    log.started(room, at, [f"booking-{room}"])
            for n, pair in enumerate(rooms):
                time.sleep(max(0.0, started + n * PAIR_GAP_S + MEETING_S - time.time()))
                for room in pair:
                    vendor.stop_record(room)
                at = time.time()
                for room in pair:
                    log.stopped(room, at)
            expected = 2 * len(rooms)
            deadline = time.monotonic() + args.timeout
            while len(consumer.received) < expected and time.monotonic() < deadline:
                if not kill and sim.journal("getVodInfoByRoomId"):
                    kill["at"] = time.time()
                    kill_all(workers)
                    time.sleep(args.restart_after)
                    workers = [celery_worker(env, "query,events", 8) for _ in range(2)]
                    kill["back"] = time.time()
                time.sleep(0.05)
            consumer.wait(expected + 1, timeout_s=2.0)  # a duplicate would show up now
            consumer.stop()
            journal = sim.journal()
            files = {f["download_url"]: f for f in sim.files()}
        finally:
            watch.stop()
            for process in [*workers, *([beat] if beat else [])]:
                with contextlib.suppress(Exception):
                    process.stop()
            with contextlib.suppress(Exception):
                cleanup(args.redis, prefix)
    report(args, started, kill, watch.first, files, consumer, journal)


def report(
    args: argparse.Namespace,
    started: float,
    kill: dict[str, float],
    waited: dict[str, float],
    files: dict[str, dict[str, Any]],
    consumer: Consumer,
    journal: list[dict[str, Any]],
) -> None:
    delivered: dict[str, tuple[float, dict[str, Any]]] = {}
    ids = [props.get("message_id") for _, _, props in consumer.received]
    for t, body, _ in consumer.received:
        delivered.setdefault(body["download_url"], (t, body))
    queries = [e for e in journal if e["endpoint"] in ("getVodListByTime", "getVodInfoByRoomId")]
    codes = Counter((e["endpoint"], e["code"]) for e in queries)
    row("setup", f"{args.pairs} pairs of rooms ({2 * args.pairs} files), budget 5 per "
        f"{args.period:g} s, {args.faults:.0%} of query calls 501, no callbacks")  # fmt: skip
    if kill:
        row("kill", f"both workers SIGKILLed at {kill['at'] - started:.1f} s (first room "
            f"look-up), new ones ready at {kill['back'] - started:.1f} s")  # fmt: skip
    row("query calls", ", ".join(f"{e} {c}: {n}" for (e, c), n in sorted(codes.items())))
    possible_to_msg: list[float] = []
    late = 0
    print(f"  {'file (room)':<14} {'final':>7} {'possible':>9} {'message':>8} "
          f"{'possible->msg':>14} {'final->msg':>11}  room")  # fmt: skip
    for url, file in sorted(files.items(), key=lambda kv: kv[1]["room_id"]):
        fid = file_key_id(normalize_download_url(url))
        possible = waited.get(fid)
        got = delivered.get(url)
        msg = got[0] if got else None
        right = got is not None and got[1]["room_id"] == file["room_id"]
        if possible is not None:
            if msg is None or msg - possible > DEADLINE_S:
                late += 1
            if msg is not None:
                possible_to_msg.append(msg - possible)

        final = file.get("final_at")
        verdict = "right" if right else ("WRONG" if got else "undelivered")
        if possible is None:
            verdict += " (never waited: not ambiguous)"
        print(
            f"  {file['room_id']:<14} {_rel(final, started)} {_rel(possible, started):>9} "
            f"{_rel(msg, started):>8} {_span(possible, msg):>14} {_span(final, msg):>11}"
            f"  {verdict}"
        )
    if possible_to_msg:
        p50, top = percentile(possible_to_msg, 50), max(possible_to_msg)
        row("possible->msg", f"p50 {p50:.1f} s, max {top:.1f} s, {len(possible_to_msg)} files")
    row("undelivered", f"{late} of {len(waited)} a minute after their look-ups were possible")
    row("delivered", f"{len(delivered)} of {len(files)}, {len(ids) - len(set(ids))} duplicates")
    sys.exit(1 if late or len(delivered) < len(files) else 0)


def _rel(t: float | None, started: float) -> str:
    return f"{t - started:7.1f}" if t is not None else "      -"


def _span(since: float | None, until: float | None) -> str:
    return f"{until - since:.1f} s" if since is not None and until is not None else "-"


if __name__ == "__main__":
    main()

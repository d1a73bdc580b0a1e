"""Benchmark: 40 recorded meetings, half their callbacks lost; what does discovery spend?

Everything runs for real: the simulator (per-user files on, half the callbacks dropped),
gunicorn with the callback receiver, a Celery worker (``query`` + ``events``), Celery beat (the
poll every ``POLL_INTERVAL_S``) and a kombu consumer. The bench stands in for the lifecycle: it
starts and stops each meeting with the client and writes the recording log.

Time is scaled down 30x from production: the budget is 5 calls per 2 s (not per 60 s), the
poll runs every 2 s, transcoding takes 6 s (3 min), ``POLL_OVERLAP_S`` and
``EXPECTED_TRANSCODE_S`` are 30 s (15 min). Meetings start in 10 waves and end in 4 waves,
2.5 s apart, so each meeting has its own (start, end) pair, as real meetings do, and they end
close together (think: the top of the hour).

Prints query calls per delivered file (whole run, and while files were pending) and the time
from each file's final status to its message, by source.

    .venv/bin/python bench/discovery.py [--meetings 40] [--per-user-files 2] [--drop 0.5]
                                        [--transcode 6] [--redis redis://127.0.0.1:6379/15]
    .venv/bin/python bench/discovery.py --backlog 5000 [--period 4] [--rate-limit 5]
                                        [--page-max 50]

``--backlog N`` measures polling alone instead: N files waiting without callbacks, delivered at
what share of the vendor's limit (bench/discovery_backlog.py).

Needs Redis on 127.0.0.1:6379; starts everything it needs and deletes its keys when done.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
import tempfile
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
    free_port,
    gunicorn_web,
    percentile,
    row,
    stopping,
)
from discovery_backlog import add_arguments, run_backlog

from config.settings import load_settings
from schedules.recording_log import RecordingLog
from worker.anyrtc.client import AnyRTCClient
from worker.discovery.correlate import TIGHT_S
from worker.redis import redis_from_url
from worker.simulator import running_simulator

PERIOD_S = 2.0
WAVE_S = 2.5  # > 1 + TIGHT_S (1.75 s), with room for a busy machine's scheduling jitter


def celery_beat(env: dict[str, str], schedule_dir: str) -> Process:
    command = [
        sys.executable, "-m", "celery", "-A", "worker", "beat", "--loglevel=WARNING",
        f"--schedule={schedule_dir}/beat-schedule",
    ]  # fmt: skip
    return Process("beat", command, env)


def meeting_plan(meetings: int, start_waves: int) -> list[tuple[float, str, str]]:
    """(at seconds, "start"|"stop", room): meeting n starts in wave n % start_waves and stops in
    wave n // start_waves, so no two meetings share a (start, stop) pair."""
    first_stop = start_waves * WAVE_S + 2.0
    events = []
    for n in range(meetings):
        room = f"meet-{n:03d}"
        events.append((n % start_waves * WAVE_S, "start", room))
        events.append((first_stop + n // start_waves * WAVE_S, "stop", room))
    return sorted(events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meetings", type=int, default=40)
    parser.add_argument("--start-waves", type=int, default=10)
    parser.add_argument("--per-user-files", type=int, default=2)
    parser.add_argument("--drop", type=float, default=0.5, help="share of callbacks lost")
    parser.add_argument("--transcode", type=float, default=6.0, help="seconds to transcode")
    parser.add_argument("--poll-interval", type=float, default=PERIOD_S)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--verbose", action="store_true", help="list every query call")
    add_arguments(parser)
    args = parser.parse_args()
    if args.backlog:
        run_backlog(args, celery_beat)
        return

    prefix = f"bench-disc-{uuid.uuid4().hex[:8]}"
    token = secrets.token_urlsafe(16)
    port = free_port()
    expected_files = args.meetings * (1 + args.per_user_files)
    with (
        running_simulator(
            app_id=APP_ID,
            vod_token=VOD_TOKEN,
            rate_limit=5,
            rate_period_s=PERIOD_S,
            upload_delay_s=1.0,
            transcode_delay_s=args.transcode,
            per_user_files=args.per_user_files,
            callback_drop_rate=args.drop,
            seed=11,
        ) as sim,
        tempfile.TemporaryDirectory() as beat_dir,
    ):
        env = bench_env(
            sim, args.redis, prefix, token,
            QUERY_RATE_LIMIT="5", QUERY_RATE_PERIOD_S=str(PERIOD_S), QUERY_RATE_MARGIN_S="0.05",
            POLL_INTERVAL_S=str(args.poll_interval), POLL_OVERLAP_S="30",
            EXPECTED_TRANSCODE_S="30", ANYRTC_HTTP_TIMEOUT_S="5",
        )  # fmt: skip
        settings = load_settings(**{k.lower(): v for k, v in env.items()})
        vendor = AnyRTCClient.from_settings(settings)
        log = RecordingLog(redis_from_url(args.redis), prefix)
        try:
            web = gunicorn_web(env, port, 2)
            with stopping(web):
                worker = celery_worker(env, "query,events", 8)
                with stopping(worker):
                    consumer = Consumer(args.redis, prefix, f"{prefix}-customer")
                    sim.configure(callback_url=f"http://127.0.0.1:{port}/AR/V1/av?token={token}")
                    beat = celery_beat(env, beat_dir)
                    with stopping(beat):
                        started = time.time()
                        for at, action, room in meeting_plan(args.meetings, args.start_waves):
                            time.sleep(max(0.0, started + at - time.time()))
                            if action == "start":
                                vendor.start_record(room)
                                log.started(room, time.time(), [f"booking-{room}"])
                            else:
                                vendor.stop_record(room)
                                log.stopped(room, time.time())
                        consumer.wait(expected_files, timeout_s=args.timeout)
                        finished = time.time()
                        sessions = [
                            s for n in range(args.meetings) for s in log.for_room(f"meet-{n:03d}")
                        ]
                    consumer.stop()
                    journal = sim.journal()
                    files = {f["download_url"]: f for f in sim.files()}
        finally:
            with contextlib.suppress(Exception):
                cleanup(args.redis, prefix)
    report(args, expected_files, started, finished, journal, files, consumer)
    clashes = sum(
        1
        for a in sessions
        for b in sessions
        if a is not b
        and abs(a.started_at - b.started_at) <= 1 + TIGHT_S
        and abs((a.stopped_at or 0) - (b.stopped_at or 0)) <= 1 + TIGHT_S
    )
    row(
        "schedule",
        "held: every meeting had its own (start, stop)"
        if not clashes
        else f"slipped (machine busy?): {clashes // 2} meeting pairs started and stopped within "
        f"{1 + TIGHT_S:g} s of each other, so correlation had to look rooms up",
    )


def report(
    args: argparse.Namespace,
    expected_files: int,
    started: float,
    finished: float,
    journal: list[dict[str, Any]],
    files: dict[str, dict[str, Any]],
    consumer: Consumer,
) -> None:
    queries = [e for e in journal if e["endpoint"] in ("getVodListByTime", "getVodInfoByRoomId")]
    by_endpoint = Counter(e["endpoint"] for e in queries)
    callbacks = Counter(e["verdict"] for e in journal if e["endpoint"] == "callback")
    bodies = {body["download_url"]: (t, body) for t, body, _ in consumer.received}
    ids = [props.get("message_id") for _, _, props in consumer.received]
    delivered = len(bodies)
    first_upload = min((f["upload_at"] for f in files.values()), default=started)
    last_message = max((t for t, _ in bodies.values()), default=finished)
    pending = [e for e in queries if first_upload <= e["time"] <= last_message]
    right_room = sum(1 for url, (_, b) in bodies.items() if b["room_id"] == files[url]["room_id"])
    right_booking = sum(
        1 for url, (_, b) in bodies.items() if b["booking_id"] == f"booking-{files[url]['room_id']}"
    )
    lags: dict[str, list[float]] = {}
    for url, (t, body) in bodies.items():
        lags.setdefault(body["source"], []).append(t - files[url]["final_at"])
    everything = [lag for values in lags.values() for lag in values]

    row("meetings", f"{args.meetings} ({expected_files} files, {args.per_user_files} per-user "
        f"each), callbacks: {dict(callbacks)}")  # fmt: skip
    row("delivered", f"{delivered} of {expected_files} files, "
        f"{len(ids) - len(set(ids))} duplicate messages")  # fmt: skip
    row("room / booking", f"{right_room} right room, {right_booking} right booking")
    row("by source", str(dict(Counter(b["source"] for _, b in bodies.values()))))
    row("query calls", f"{len(queries)} ({dict(by_endpoint)}), "
        f"{sum(1 for e in queries if e['code'] == 299)} answered 299")  # fmt: skip
    row("calls per file", f"{len(queries) / max(1, delivered):.3f} over the whole run "
        f"({finished - started:.0f} s)")  # fmt: skip
    row("  while pending", f"{len(pending) / max(1, delivered):.3f} from the first upload "
        f"to the last message ({last_message - first_upload:.0f} s)")  # fmt: skip
    for source, values in sorted(lags.items()):
        row(f"final->msg {source}", _lag_line(values))
    row("final->msg all", _lag_line(everything))
    if args.verbose:
        for e in queries:
            p = e["params"]
            print(f"  {e['time'] - started:6.2f} {e['endpoint'][9:]:>10} "
                  f"[{p['begTime'] / 1000 - started:7.2f}, {p['endTime'] / 1000 - started:6.2f}] "
                  f"page {p.get('pageNum')} -> {e['code']}")  # fmt: skip


def _lag_line(values: list[float]) -> str:
    p50, p90, p99 = (percentile(values, q) for q in (50, 90, 99))
    return f"p50 {p50:.2f} s, p90 {p90:.2f} s, p99 {p99:.2f} s, max {max(values):.2f} s"


if __name__ == "__main__":
    main()

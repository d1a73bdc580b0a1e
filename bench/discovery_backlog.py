"""``bench/discovery.py --backlog N``: how fast polling alone delivers N files whose callbacks
were lost, against the vendor's query limit.

N finished recordings are waiting when discovery starts (callbacks lost, e.g. while the web
process was down): each has a recording-log session of its own (starts 2 s apart), so
correlation settles every file's room without a look-up, and every file is final when first
listed. The newest of them ended ``--age`` seconds before the drain:

* default, an hour: discovery was down while they piled up (its watermark is from before the
  first of them, as a poll left it) and their callbacks were lost; each was uploaded longer ago
  than ``EXPECTED_TRANSCODE_S`` plus the grace, so no callback can still be on its way and each
  goes out when listed (worker/discovery/grace.py);
* ``--age 60``: a burst of meetings that just ended, callbacks not arriving; no watermark (the
  first poll ever looks back one ``POLL_OVERLAP_S``); each file waits ``CALLBACK_GRACE_S`` for
  a callback that could still come.

Then a real Celery worker (``query`` + ``events``) and Celery beat start, and a kombu consumer
counts the messages. The ceiling is ``QUERY_RATE_LIMIT x POLL_PAGE_MAX`` files per
``QUERY_RATE_PERIOD_S`` (one page per admitted call); time is scaled down through the period.

Prints files delivered per minute over the whole drain (from the first query call to the last
message, plus the one period the first window's calls had for free) and in steady state (the
middle 80 % of the messages), each as a share of the ceiling, and the query calls by kind
(``--verbose``: every call, its time after the first and its window).
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import tempfile
import time
import uuid
from collections import Counter
from typing import Any

from callbacks import APP_ID, VOD_TOKEN, Consumer, bench_env, celery_worker, cleanup, row, stopping

from schedules.recording_log import RecordingLog
from worker.discovery.keys import DiscoveryKeys
from worker.redis import redis_from_url
from worker.simulator import running_simulator

#: Seconds between the starts of two backlog meetings: more than 1 + TIGHT_S, so each file's
#: (start, stop) names one logged session.
START_SPACING_S = 2.0
#: Seconds between the ends (and so the uploads) of two backlog meetings.
END_SPACING_S = 0.01
MEETING_S = 600.0
#: POLL_OVERLAP_S at its default: how far back the first poll ever looks.
DEFAULT_OVERLAP_S = 900.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("--backlog")
    group.add_argument("--backlog", type=int, default=0, help="files waiting without callbacks")
    group.add_argument("--rate-limit", type=int, default=5, help="QUERY_RATE_LIMIT")
    group.add_argument("--period", type=float, default=4.0, help="QUERY_RATE_PERIOD_S")
    group.add_argument("--margin", type=float, default=0.05, help="QUERY_RATE_MARGIN_S")
    group.add_argument("--page-max", type=int, default=50, help="POLL_PAGE_MAX")
    group.add_argument(
        "--age", type=float, default=3600.0, help="seconds since the newest backlog file ended"
    )


def run_backlog(args: argparse.Namespace, celery_beat: Any) -> None:
    prefix = f"bench-backlog-{uuid.uuid4().hex[:8]}"
    with (
        running_simulator(
            app_id=APP_ID,
            vod_token=VOD_TOKEN,
            rate_limit=args.rate_limit,
            rate_period_s=args.period,
            callback_drop_rate=1.0,
            seed=11,
        ) as sim,
        tempfile.TemporaryDirectory() as beat_dir,
    ):
        env = bench_env(
            sim, args.redis, prefix, secrets.token_urlsafe(16),
            QUERY_RATE_LIMIT=str(args.rate_limit), QUERY_RATE_PERIOD_S=str(args.period),
            QUERY_RATE_MARGIN_S=str(args.margin), POLL_PAGE_MAX=str(args.page_max),
            POLL_INTERVAL_S=str(args.period), ANYRTC_HTTP_TIMEOUT_S="5",
        )  # fmt: skip
        try:
            client = redis_from_url(args.redis)
            oldest_end = _record_backlog(sim, RecordingLog(client, prefix), args.backlog, args.age)
            args.watermark = time.time() - oldest_end > DEFAULT_OVERLAP_S - 60.0
            if args.watermark:
                # Discovery's last poll before it went down: a minute before the first file.
                watermark_ms = int((oldest_end - 60.0) * 1000)
                client.set(DiscoveryKeys(prefix).poll_watermark, watermark_ms)
            consumer = Consumer(args.redis, prefix, f"{prefix}-customer")
            worker = celery_worker(env, "query,events", 8)
            with stopping(worker):
                beat = celery_beat(env, beat_dir)
                with stopping(beat):
                    consumer.wait(args.backlog, timeout_s=args.timeout)
                consumer.stop()
            journal = sim.journal()
        finally:
            with contextlib.suppress(Exception):
                cleanup(args.redis, prefix)
    report_backlog(args, journal, consumer)


def _record_backlog(sim: Any, log: RecordingLog, count: int, age_s: float) -> float:
    """``count`` meetings the vendor recorded, uploaded and transcoded, callbacks lost; returns
    when the oldest ended."""
    last_end = time.time() - age_s  # the simulator transcodes in 5 s: every file is final
    end = last_end
    for n in range(count):
        room = f"backlog-{n:05d}"
        end = last_end - n * END_SPACING_S
        start = end - MEETING_S - n * START_SPACING_S
        sim.record(room, start, end)
        log.started(room, start, [f"booking-{room}"])
        log.stopped(room, end)
    return end


def report_backlog(args: argparse.Namespace, journal: list[dict[str, Any]], consumer: Any) -> None:
    ceiling = args.rate_limit * args.page_max * 60.0 / args.period
    queries = [e for e in journal if e["endpoint"] in ("getVodListByTime", "getVodInfoByRoomId")]
    times = sorted(t for t, body, _ in consumer.received if body["source"] == "poll")
    sources = Counter(body["source"] for _, body, _ in consumer.received)
    ids = [props.get("message_id") for _, _, props in consumer.received]
    right = sum(1 for _, b, _ in consumer.received if b["booking_id"] == f"booking-{b['room_id']}")
    since = "watermark from before them (discovery was down)" if args.watermark else "first poll"
    row("backlog", f"{args.backlog} files, callbacks lost, the newest ended {args.age:g} s ago, "
        f"{since}; limit {args.rate_limit} calls x {args.page_max} files per {args.period:g} s "
        f"(+{args.margin:g} s margin)")  # fmt: skip
    row("delivered", f"{len(consumer.received)} ({dict(sources)}), {len(ids) - len(set(ids))} "
        f"duplicates, {right} with the right booking")  # fmt: skip
    row("query calls", f"{len(queries)}: {dict(Counter(_kind(e) for e in queries))}, "
        f"{sum(1 for e in queries if e['code'] == 299)} answered 299")  # fmt: skip
    row("ceiling", f"{ceiling:.0f} files/min")
    if len(times) < 10 or not queries:
        row("files/min", "too few files delivered by polling to measure")
        return
    # The drain occupies whole budget windows: the first window's calls are free at once, so
    # the span from the first call to the last message is one period short of the time used.
    first_call = min(e["time"] for e in queries)
    whole = len(times) / (times[-1] - first_call + args.period) * 60.0
    lo, hi = times[len(times) // 10], times[len(times) * 9 // 10]
    steady = (len(times) * 9 // 10 - len(times) // 10) / max(hi - lo, 1e-9) * 60.0
    row("files/min whole", f"{whole:.0f} ({whole / ceiling:.1%} of the ceiling) over "
        f"{times[-1] - first_call:.1f} s + a period, first query call to last message")  # fmt: skip
    row("files/min steady", f"{steady:.0f} ({steady / ceiling:.1%}) over the middle 80 %")
    row("files per call", f"{len(times) / len(queries):.1f} (a page holds {args.page_max})")
    if args.verbose:
        for e in queries:
            p, at_ms = e["params"], first_call * 1000
            print(f"  {e['time'] - first_call:6.2f} {_kind(e):>12} "
                  f"[{p['begTime'] - at_ms:9.0f}, {p['endTime'] - at_ms:6.0f}] ms "
                  f"page {p.get('pageNum')} -> {e['code']}")  # fmt: skip


def _kind(entry: dict[str, Any]) -> str:
    return "room look-up" if entry["endpoint"] == "getVodInfoByRoomId" else "time list"

"""The top-of-the-hour herd: N windows due at the same second, vendor latency 100 ms.

Measures, from the simulator's journal (when each startrecord call *arrived*), how late the
starts were (p50/p95/p99/max), and counts early starts, duplicate calls and missed windows:

1. ours: windows in the Redis due set, claimed by the dispatcher inside each lifecycle worker
   and handed over as ``recordings.perform_batch`` tasks (the product as shipped: the Procfile's
   ``lifecycle`` line, threads -c 64, once per core);
2. naive: one ``apply_async(eta=due)`` per window whose task calls the vendor client directly.

Both run on identical worker processes (threads pool, same concurrency) against the same kind of
simulator. Needs Redis on 127.0.0.1:6379; starts its own simulator and workers, uses its own key
prefix (deleted at the end) and finishes by itself::

    .venv/bin/python bench/herd.py                 # 1000 windows
    .venv/bin/python bench/herd.py --windows 300 --skip-naive

Target for ours: p99 <= 2 s, zero early, zero duplicate, zero missed.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from celery import Celery  # noqa: E402

APP_ID = "herd-app"
NAIVE_QUEUE = "naive"
NAIVE_TASK = "herd.naive_start"


# -- the naive way: importable as ``herd:naive_app`` by its worker --------------------------


def _naive_app() -> Celery:
    prefix = os.environ.get("REDIS_KEY_PREFIX", "herd")
    app = Celery("herd-naive", broker=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    app.conf.update(
        broker_transport_options={"global_keyprefix": f"{prefix}:naive:"},
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_default_queue=NAIVE_QUEUE,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
    )
    client: dict[str, Any] = {}

    @app.task(name=NAIVE_TASK)
    def naive_start(room_id: str) -> None:
        if "c" not in client:
            from config.settings import load_settings
            from worker.anyrtc import AnyRTCClient

            client["c"] = AnyRTCClient.from_settings(load_settings())
        try:
            client["c"].start_record(room_id)
        except Exception as exc:  # the journal is the measurement; keep the worker going
            print(f"naive start of {room_id} failed: {exc}", file=sys.stderr)

    return app


naive_app = _naive_app() if os.environ.get("HERD_NAIVE_WORKER") else None


# -- processes ---------------------------------------------------------------------------------


class Worker:
    """A celery worker subprocess with its own log file."""

    def __init__(self, app: str, queue: str, concurrency: int, env: dict[str, str]) -> None:
        handle, path = tempfile.mkstemp(prefix="herd-worker-", suffix=".log")
        os.close(handle)
        self.log_path = Path(path)
        self.hostname = f"herd-{uuid.uuid4().hex[:6]}@bench"
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            app,
            "worker",
            f"--loglevel={env.get('LOG_LEVEL', 'WARNING')}",
            "--pool=threads",
            f"--concurrency={concurrency}",
            f"--queues={queue}",
            f"--hostname={self.hostname}",
            "--without-mingle",
            "--without-gossip",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, app: Celery, timeout_s: float = 60.0) -> None:
        """Until the worker answers a control ping (its log stays at WARNING: no per-task
        lines to slow the herd down)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited:\n{self.log_path.read_text()[-3000:]}")
            if app.control.ping(destination=[self.hostname], timeout=0.5):
                return
        raise RuntimeError(f"worker not ready in {timeout_s}s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log_path.unlink(missing_ok=True)


@contextmanager
def workers(
    app: str, queue: str, count: int, concurrency: int, env: dict[str, str], control: Celery
) -> Iterator[list[Worker]]:
    started = [Worker(app, queue, concurrency, env) for _ in range(count)]
    try:
        for worker in started:
            worker.wait_ready(control)
        yield started
    finally:
        for worker in started:
            worker.stop()


def delete_prefix(client: redis.Redis, prefix: str) -> int:
    deleted = 0
    # The naive scenario's app has no key prefix: kombu writes its exchange tables bare. This
    # database is the bench's own (--redis-db), so they go too.
    for pattern in (f"*{prefix}*", "_kombu.binding*"):
        for key in client.scan_iter(match=pattern, count=1000):
            deleted += client.delete(key)
    return deleted


# -- measuring ---------------------------------------------------------------------------------


def measure(sim: Any, rooms: list[str], due: float, settle_s: float) -> dict[str, Any]:
    """Wait until every room has a start (or ``settle_s`` after due), then read the journal."""
    wanted = set(rooms)
    deadline = due + settle_s
    while time.time() < deadline:
        seen = {e["params"].get("ArRoomID") for e in sim.journal("startrecord")}
        if wanted <= seen:
            break
        time.sleep(0.2)
    time.sleep(1.0)  # let stragglers (duplicates) arrive
    calls = [e for e in sim.journal("startrecord") if e["params"].get("ArRoomID") in wanted]
    per_room = Counter(e["params"]["ArRoomID"] for e in calls)
    first: dict[str, float] = {}
    for entry in sorted(calls, key=lambda e: e["time"]):
        first.setdefault(entry["params"]["ArRoomID"], entry["time"] - due)
    lateness = sorted(first.values())

    def pct(p: float) -> float:
        if not lateness:
            return float("nan")
        return lateness[min(len(lateness) - 1, max(0, round(p / 100 * len(lateness)) - 1))]

    return {
        "windows": len(rooms),
        "min": lateness[0] if lateness else float("nan"),
        "p50": pct(50),
        "p95": pct(95),
        "p99": pct(99),
        "max": lateness[-1] if lateness else float("nan"),
        "mean": statistics.fmean(lateness) if lateness else float("nan"),
        "early": sum(1 for e in calls if e["time"] < due),
        "duplicates": sum(n - 1 for n in per_room.values()),
        "missed": len(wanted - set(per_room)),
        "failed_calls": sum(1 for e in calls if e["verdict"] != "ok"),
    }


def run_ours(args: argparse.Namespace, sim: Any, env: dict[str, str]) -> dict[str, Any]:
    from config.settings import load_settings
    from schedules import Lifecycle
    from worker.redis import redis_from_url

    settings = load_settings()
    ctx = Lifecycle(settings, redis_from_url(settings.redis_url))
    rooms = [f"ours-{i}" for i in range(args.windows)]
    from worker import app

    with workers("worker", "lifecycle", args.workers, args.concurrency, env, app):
        due = float(int(time.time()) + args.lead_s)
        for room in rooms:
            ctx.store.apply_event(
                "schedule",
                f"herd-{room}",
                now=time.time(),
                room_id=room,
                start_at=due,
                end_at=due + 3600,
                params={},
                request={},
            )
        if time.time() > due - 1:
            raise RuntimeError("scheduling took too long; raise --lead-s")
        return measure(sim, rooms, due, args.settle_s)


def run_naive(args: argparse.Namespace, sim: Any, env: dict[str, str]) -> dict[str, Any]:
    rooms = [f"naive-{i}" for i in range(args.windows)]
    naive_env = {**env, "HERD_NAIVE_WORKER": "1", "PYTHONPATH": str(ROOT / "bench")}
    app = _naive_app()
    with workers("herd:naive_app", NAIVE_QUEUE, args.workers, args.concurrency, naive_env, app):
        due = float(int(time.time()) + args.lead_s)
        eta = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(due))
        with app.producer_or_acquire() as producer:
            for room in rooms:
                app.send_task(
                    NAIVE_TASK, args=[room], eta=eta, queue=NAIVE_QUEUE, producer=producer
                )
        if time.time() > due - 1:
            raise RuntimeError("publishing took too long; raise --lead-s")
        result = measure(sim, rooms, due, args.settle_s)
    app.close()
    return result


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    names = list(results)
    rows = [
        ("windows due at one second", "windows", "{:d}"),
        ("lateness min (s)", "min", "{:.3f}"),
        ("lateness p50 (s)", "p50", "{:.3f}"),
        ("lateness p95 (s)", "p95", "{:.3f}"),
        ("lateness p99 (s)", "p99", "{:.3f}"),
        ("lateness max (s)", "max", "{:.3f}"),
        ("early starts", "early", "{:d}"),
        ("duplicate calls", "duplicates", "{:d}"),
        ("missed windows", "missed", "{:d}"),
        ("calls not answered ok", "failed_calls", "{:d}"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [
        f"herd: {args.windows} windows, vendor latency {args.latency:.3f}s, "
        f"{args.workers} worker process(es) x threads -c {args.concurrency}",
        "".ljust(width) + "".join(f"  {n:>22}" for n in names),
    ]
    for label, key, fmt in rows:
        cells = "".join(f"  {fmt.format(results[n][key]):>22}" for n in names)
        lines.append(label.ljust(width) + cells)
    ours = results.get("ours (dispatcher)")
    if ours:
        ok = (
            ours["p99"] <= 2.0
            and ours["early"] == 0
            and ours["duplicates"] == 0
            and ours["missed"] == 0
        )
        lines.append(
            f"target for ours (p99 <= 2 s, 0 early/duplicate/missed): {'met' if ok else 'NOT met'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.1, help="simulator latency (s)")
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes per scenario (one per core)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=64, help="threads per worker (the Procfile's lifecycle)"
    )
    parser.add_argument("--lead-s", type=float, default=6.0, help="seconds until the herd")
    parser.add_argument("--settle-s", type=float, default=60.0, help="give up this long after")
    parser.add_argument("--redis-db", type=int, default=14)
    parser.add_argument("--skip-naive", action="store_true", help="only measure ours")
    parser.add_argument("--skip-ours", action="store_true", help="only measure the naive way")
    args = parser.parse_args(argv)

    from worker.simulator import running_simulator

    prefix = f"herd-{uuid.uuid4().hex[:8]}"
    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    client = redis.Redis.from_url(redis_url)
    client.ping()
    token = uuid.uuid4().hex
    results: dict[str, dict[str, Any]] = {}
    with running_simulator(app_id=APP_ID, vod_token=token, latency_s=args.latency, seed=1) as sim:
        env = {
            **os.environ,
            "ANYRTC_APP_ID": APP_ID,
            "ANYRTC_VOD_TOKEN": token,
            "ANYRTC_RECORD_API_URL": sim.record_api_url,
            "ANYRTC_VOD_API_URL": sim.vod_api_url,
            "ANYRTC_HTTP_TIMEOUT_S": "5",
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": prefix,
            "LOG_LEVEL": os.environ.get("HERD_LOG_LEVEL", "WARNING"),
        }
        env.pop("CELERY_BROKER_URL", None)
        env.pop("CELERY_RESULT_BACKEND", None)
        os.environ.update({k: v for k, v in env.items() if k.startswith(("ANYRTC_", "REDIS_"))})
        try:
            if not args.skip_ours:
                results["ours (dispatcher)"] = run_ours(args, sim, env)
                sim.reset()
            if not args.skip_naive:
                results["naive (eta per window)"] = run_naive(args, sim, env)
        finally:
            with suppress(redis.RedisError):
                delete_prefix(client, prefix)
            client.close()
    print(report(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

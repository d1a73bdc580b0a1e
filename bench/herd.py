"""The top-of-the-hour herd: N windows due at the same second, vendor latency 100 ms.

Measures, from the simulator's journal (when each startrecord call *arrived*), how late the
starts were (p50/p95/p99/max), and counts early starts, duplicate calls and missed windows:

1. ours: windows in the Redis due set, claimed by the dispatcher inside each lifecycle worker
   and handed over as ``recordings.perform_batch`` tasks (the product as shipped: the Procfile's
   ``lifecycle`` line run as written, at its default concurrency, one process per core);
2. floor: the same number of bare start calls fired at the due second from the same worker
   processes, threads and connection pool, with no Redis work (bench/herd_floor.py); ours/floor
   at p50 and p99 is what exactly-once costs at the second;
3. naive (``--naive``): one ``apply_async(eta=due)`` per window whose task calls the vendor
   client directly, on worker processes of the same pool and concurrency.

``--rounds N`` repeats ours then floor N times on the same workers, each round a new herd, so
the noise between runs shows in one report. Needs Redis on 127.0.0.1:6379; starts its own
simulator (in this process) and workers, uses its own key prefix (deleted at the end) and
finishes by itself::

    .venv/bin/python bench/herd.py                  # 1000 windows, ours and floor, one round
    .venv/bin/python bench/herd.py --rounds 3 --naive

Targets for ours: p99 <= 1.0 s, ours/floor <= 1.5 at p99, zero early, duplicate or missed.
docs/lifecycle.md section 7 says how to read the report. The lifecycle workers log as the
Procfile's line does at default settings (``LOG_LEVEL`` INFO); ``HERD_LOG_LEVEL`` sets another
level for every worker, and ``HERD_KEEP_LOGS=1`` keeps their log files
(``/tmp/herd-worker-*.log``), e.g. to count the batches each worker received.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
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
    """A celery worker subprocess with its own log file: the Procfile's ``lifecycle`` line run
    as written (``procfile=True``), or a bench app's worker of the same pool and size."""

    def __init__(
        self,
        app: str,
        queue: str,
        concurrency: int | None,
        env: dict[str, str],
        *,
        procfile: bool = False,
    ) -> None:
        handle, path = tempfile.mkstemp(prefix="herd-worker-", suffix=".log")
        os.close(handle)
        self.log_path = Path(path)
        env = {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}
        hostname = None
        if procfile:
            from worker.demo.procfile import read_procfile

            if concurrency is not None:
                env["LIFECYCLE_CONCURRENCY"] = str(concurrency)
            line = f"exec {read_procfile()['lifecycle']} --include=herd_floor"
            command = ["sh", "-c", line]
        else:
            hostname = f"herd-{uuid.uuid4().hex[:6]}@bench"
            command = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                app,
                "worker",
                "--pool=threads",
                f"--concurrency={concurrency or 64}",
                f"--queues={queue}",
                f"--hostname={hostname}",
                "--without-mingle",
                "--without-gossip",
            ]
        level = env.get("LOG_LEVEL", "" if procfile else "WARNING")
        if level:  # the Procfile's line as written sets none
            command.append(f"--loglevel={level}")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        # The Procfile names a node lifecycle-<pid of the shell, which exec made celery>@host.
        self.hostname = hostname or f"lifecycle-{self.process.pid}@{socket.gethostname()}"

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
        if not os.environ.get("HERD_KEEP_LOGS"):
            self.log_path.unlink(missing_ok=True)


@contextmanager
def workers(
    app: str,
    queue: str,
    count: int,
    concurrency: int | None,
    env: dict[str, str],
    control: Celery,
    *,
    procfile: bool = False,
) -> Iterator[list[Worker]]:
    started = [Worker(app, queue, concurrency, env, procfile=procfile) for _ in range(count)]
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


def _wait_settled(ctx: Any, timeout_s: float = 60.0) -> None:
    """Until no claimed action or open operation is left (the herd's replies all settled), so
    the next scenario's second is not shared with this one's settling."""
    deadline = time.monotonic() + timeout_s
    while ctx.redis.zcard(ctx.keys.inflight) and time.monotonic() < deadline:
        time.sleep(0.2)


def herd_ours(ctx: Any, sim: Any, args: argparse.Namespace, tag: str) -> dict[str, Any]:
    """N bookings due at one second, booked ``--lead-s`` ahead through the product's store."""
    rooms = [f"ours{tag}-{i}" for i in range(args.windows)]
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
    if time.time() > due - ctx.settings.dispatch_ahead_s:
        raise RuntimeError("scheduling took too long; raise --lead-s")
    result = measure(sim, rooms, due, args.settle_s)
    _wait_settled(ctx)
    return result


def herd_floor(app: Celery, sim: Any, args: argparse.Namespace, tag: str, ahead_s: float) -> dict:
    """The same number of bare calls, handed to the same workers when the dispatcher would
    have claimed them (``ahead_s`` before the second)."""
    from herd_floor import publish_floor

    rooms = [f"floor{tag}-{i}" for i in range(args.windows)]
    due = float(int(time.time()) + args.lead_s)
    time.sleep(max(due - ahead_s - time.time(), 0.0))
    publish_floor(app, rooms, due)
    if time.time() > due - 1:
        raise RuntimeError("publishing took too long")
    return measure(sim, rooms, due, args.settle_s)


def run_rounds(
    args: argparse.Namespace, sim: Any, env: dict[str, str]
) -> list[dict[str, dict[str, Any]]]:
    """``--rounds`` times ours then floor, on one set of Procfile lifecycle workers."""
    from config.settings import load_settings
    from schedules import Lifecycle
    from worker import app
    from worker.redis import redis_from_url

    settings = load_settings()
    ctx = Lifecycle(settings, redis_from_url(settings.redis_url))
    floor_env = {**env, "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT)])}
    rounds: list[dict[str, dict[str, Any]]] = []
    with workers(
        "worker", "lifecycle", args.workers, args.concurrency, floor_env, app, procfile=True
    ):
        for number in range(1, args.rounds + 1):
            found: dict[str, dict[str, Any]] = {}
            if not args.skip_ours:
                found["ours"] = herd_ours(ctx, sim, args, str(number))
                sim.reset()
            if not args.skip_floor:
                found["floor"] = herd_floor(app, sim, args, str(number), settings.dispatch_ahead_s)
                sim.reset()
            rounds.append(found)
    return rounds


def run_naive(args: argparse.Namespace, sim: Any, env: dict[str, str]) -> dict[str, Any]:
    rooms = [f"naive-{i}" for i in range(args.windows)]
    naive_env = {**env, "HERD_NAIVE_WORKER": "1", "PYTHONPATH": str(ROOT / "bench")}
    app = _naive_app()
    concurrency = args.concurrency or _procfile_concurrency()
    with workers("herd:naive_app", NAIVE_QUEUE, args.workers, concurrency, naive_env, app):
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


def _procfile_concurrency() -> int:
    """The lifecycle line's default thread count (``${LIFECYCLE_CONCURRENCY:-N}``)."""
    import re

    from worker.demo.procfile import read_procfile

    found = re.search(r"LIFECYCLE_CONCURRENCY:-(\d+)", read_procfile()["lifecycle"])
    return int(found.group(1)) if found else 64


# -- reporting ---------------------------------------------------------------------------------

P99_TARGET_S = 1.0
RATIO_TARGET = 1.5
_COLUMNS = [
    ("p50", "p50", "{:.3f}"),
    ("p95", "p95", "{:.3f}"),
    ("p99", "p99", "{:.3f}"),
    ("max", "max", "{:.3f}"),
    ("early", "early", "{:d}"),
    ("dup", "duplicates", "{:d}"),
    ("missed", "missed", "{:d}"),
    ("not ok", "failed_calls", "{:d}"),
]


def _ratio(ours: dict[str, Any], floor: dict[str, Any], key: str) -> float:
    return ours[key] / floor[key] if floor[key] > 0 else float("nan")


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{min(values):.3f} .. {max(values):.3f} (median {statistics.median(values):.3f})"


def report(
    rounds: list[dict[str, dict[str, Any]]],
    naive: dict[str, Any] | None,
    args: argparse.Namespace,
) -> str:
    concurrency = args.concurrency or _procfile_concurrency()
    lines = [
        f"herd: {args.windows} windows due at one second, vendor latency {args.latency:.3f}s, "
        f"{args.workers} x the Procfile's lifecycle worker (threads -c {concurrency}), "
        f"{len(rounds)} round(s); lateness in seconds after the due second, at the simulator",
        "round  scenario " + "".join(f"{name:>8}" for name, _, _ in _COLUMNS),
    ]
    runs = [(str(i), name, r) for i, found in enumerate(rounds, 1) for name, r in found.items()]
    if naive is not None:
        runs.append(("-", "naive", naive))
    for number, name, result in runs:
        cells = "".join(f"{fmt.format(result[key]):>8}" for _, key, fmt in _COLUMNS)
        lines.append(f"{number:<6} {name:<9}{cells}")
    pairs = [f for f in rounds if "ours" in f and "floor" in f]
    for number, found in enumerate(rounds, 1):
        if found in pairs:
            lines.append(
                f"round {number}: ours/floor p50 {_ratio(found['ours'], found['floor'], 'p50'):.2f}"
                f", p99 {_ratio(found['ours'], found['floor'], 'p99'):.2f}"
            )
    ours_runs = [f["ours"] for f in rounds if "ours" in f]
    if ours_runs:
        lines.append(f"ours p99 over rounds:  {_spread([r['p99'] for r in ours_runs])}")
    floor_runs = [f["floor"] for f in rounds if "floor" in f]
    if floor_runs:
        lines.append(f"floor p99 over rounds: {_spread([r['p99'] for r in floor_runs])}")
    if pairs:
        ratios = [_ratio(f["ours"], f["floor"], "p99") for f in pairs]
        lines.append(f"ours/floor p99:        {_spread(ratios)}")
        met = sum(
            1
            for f in pairs
            if f["ours"]["p99"] <= P99_TARGET_S
            and _ratio(f["ours"], f["floor"], "p99") <= RATIO_TARGET
            and f["ours"]["early"] == f["ours"]["duplicates"] == f["ours"]["missed"] == 0
        )
        lines.append(
            f"targets (ours p99 <= {P99_TARGET_S} s, ours/floor p99 <= {RATIO_TARGET}, "
            f"0 early/duplicate/missed): met in {met} of {len(pairs)} round(s)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.1, help="simulator latency (s)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 2,
        help="lifecycle worker processes (the Procfile's advice: one per core)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="threads per worker (default: the Procfile's LIFECYCLE_CONCURRENCY default)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="ours then floor, this many times")
    parser.add_argument("--lead-s", type=float, default=6.0, help="seconds until each herd")
    parser.add_argument("--settle-s", type=float, default=60.0, help="give up this long after")
    parser.add_argument("--redis-db", type=int, default=14)
    parser.add_argument("--naive", action="store_true", help="also measure the naive way")
    parser.add_argument("--skip-ours", action="store_true", help="only measure the floor")
    parser.add_argument("--skip-floor", action="store_true", help="only measure ours")
    args = parser.parse_args(argv)

    from worker.simulator import running_simulator

    prefix = f"herd-{uuid.uuid4().hex[:8]}"
    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    client = redis.Redis.from_url(redis_url)
    client.ping()
    token = uuid.uuid4().hex
    rounds: list[dict[str, dict[str, Any]]] = []
    naive = None
    with running_simulator(app_id=APP_ID, vod_token=token, latency_s=args.latency, seed=1) as sim:
        env = {
            **os.environ,
            "ANYRTC_APP_ID": APP_ID,
            "ANYRTC_VOD_TOKEN": token,
            "ANYRTC_RECORD_API_URL": sim.record_api_url,
            "ANYRTC_VOD_API_URL": sim.vod_api_url,
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": prefix,
        }
        if os.environ.get("HERD_LOG_LEVEL"):
            env["LOG_LEVEL"] = os.environ["HERD_LOG_LEVEL"]
        else:
            env.pop("LOG_LEVEL", None)  # the product's default
        env.pop("CELERY_BROKER_URL", None)
        env.pop("CELERY_RESULT_BACKEND", None)
        os.environ.update({k: v for k, v in env.items() if k.startswith(("ANYRTC_", "REDIS_"))})
        try:
            if not (args.skip_ours and args.skip_floor):
                rounds = run_rounds(args, sim, env)
            if args.naive:
                naive = run_naive(args, sim, env)
        finally:
            with suppress(redis.RedisError):
                delete_prefix(client, prefix)
            client.close()
    print(report(rounds, naive, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

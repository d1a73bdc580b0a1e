"""Benchmark: vendor callback -> downstream message latency, over 1,000 callbacks.

The whole path, each part real: the simulator (the vendor: one callback per finished file) ->
gunicorn serving the web app (``POST /AR/V1/av``, shared-secret token on) -> Celery
(``discovery.callback`` on the ``events`` queue, a real worker process) -> the topic exchange ->
a kombu consumer bound like a customer. Latency of a file = when the consumer got its message
minus when the simulator started sending its callback (same host clock).

    .venv/bin/python bench/callbacks.py [--callbacks 1000] [--rate 50] [--web-workers 2]
                                        [--concurrency 8] [--redis redis://127.0.0.1:6379/15]

Needs Redis on 127.0.0.1:6379; starts its own simulator, web server and worker, uses its own key
prefix and exchange, and deletes them when done. ``bench/discovery.py`` reuses the helpers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import redis
import requests
from kombu import Connection, Exchange, Queue

from worker.simulator import running_simulator

ROOT = Path(__file__).resolve().parents[1]
APP_ID = "bench-app"
VOD_TOKEN = f"bench-vod-{secrets.token_hex(6)}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class Process:
    """A subprocess with its output in a temp file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, command: list[str], env: Mapping[str, str]) -> None:
        self.name = name
        handle, path = tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")
        os.close(handle)
        self.log_path = Path(path)
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                command, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, ready: Any, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()[-3000:]}")
            if ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready in {timeout_s}s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self.log_path.unlink(missing_ok=True)


def celery_worker(env: Mapping[str, str], queues: str, concurrency: int) -> Process:
    command = [
        sys.executable, "-m", "celery", "-A", "worker", "worker", "--loglevel=WARNING",
        "--pool=threads", f"--concurrency={concurrency}", f"--queues={queues}",
        f"--hostname=bench-{uuid.uuid4().hex[:6]}@%h", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    process = Process("worker", command, {**env, "LOG_LEVEL": "WARNING"})
    process.wait_for(lambda: _worker_ready(env))
    return process


def _worker_ready(env: Mapping[str, str]) -> bool:
    from celery import Celery

    # A control ping: the worker logs "ready" only at INFO, which the bench keeps quiet.
    app = Celery(broker=env["REDIS_URL"])
    app.conf.broker_transport_options = {"global_keyprefix": env["CELERY_BROKER_KEY_PREFIX"]}
    try:
        return bool(app.control.ping(timeout=0.5))
    finally:
        app.close()


def gunicorn_web(env: Mapping[str, str], port: int, workers: int) -> Process:
    command = [
        sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", str(workers),
        "worker.web.app:app",
    ]  # fmt: skip
    process = Process("web", command, env)

    def healthy() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    process.wait_for(healthy)
    return process


class Consumer:
    """A customer: a queue bound to the exchange with kombu, drained in a thread."""

    def __init__(self, url: str, exchange: str, queue: str) -> None:
        self.url = url
        self.queue = Queue(queue, Exchange(exchange, "topic", durable=True), "recording.*")
        self.received: list[tuple[float, dict[str, Any], dict[str, Any]]] = []
        self._stop = threading.Event()
        with Connection(url) as conn:
            self.queue(conn.default_channel).declare()  # bind before anything is published
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        def on_message(body: dict[str, Any], message: Any) -> None:
            self.received.append((time.time(), body, dict(message.properties)))
            message.ack()

        with Connection(self.url) as conn, conn.Consumer(self.queue, callbacks=[on_message]):
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError, socket.timeout):
                    conn.drain_events(timeout=0.2)

    def wait(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def bench_env(sim: Any, redis_url: str, prefix: str, token: str, **extra: str) -> dict[str, str]:
    """The environment every process of a bench run shares."""
    return {
        "ANYRTC_APP_ID": APP_ID,
        "ANYRTC_VOD_TOKEN": VOD_TOKEN,
        "ANYRTC_RECORD_API_URL": sim.record_api_url,
        "ANYRTC_VOD_API_URL": sim.vod_api_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": prefix,
        # Opt in to a broker prefix so the bench's queues never meet a deployment's.
        "CELERY_BROKER_KEY_PREFIX": f"{prefix}:broker:",
        "DOWNSTREAM_EXCHANGE": prefix,
        "DOWNSTREAM_QUEUES": f"{prefix}-customer=recording.*",
        "CALLBACK_TOKEN": token,
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def cleanup(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    for pattern in (f"*{prefix}*", f"_kombu.binding*.{prefix}*"):
        for key in client.scan_iter(match=pattern, count=1000):
            client.delete(key)
    client.close()


@contextlib.contextmanager
def stopping(*processes: Process) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callbacks", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0, help="callbacks per second")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()

    prefix = f"bench-cb-{uuid.uuid4().hex[:8]}"
    token = secrets.token_urlsafe(16)
    port = free_port()
    with running_simulator(app_id=APP_ID, vod_token=VOD_TOKEN, upload_delay_s=0.0,
                           transcode_delay_s=0.0, seed=7) as sim:  # fmt: skip
        env = bench_env(sim, args.redis, prefix, token)
        try:
            web = gunicorn_web(env, port, args.web_workers)
            with stopping(web):
                worker = celery_worker(env, "events", args.concurrency)
                with stopping(worker):
                    consumer = Consumer(args.redis, prefix, f"{prefix}-customer")
                    sim.configure(callback_url=f"http://127.0.0.1:{port}/AR/V1/av?token={token}")
                    started = time.time()
                    for i in range(args.callbacks):
                        # A meeting that just ended and transcoded: its callback is due now.
                        now = time.time()
                        sim.record(f"room-{i:05d}", now - 60, now)
                        time.sleep(max(0.0, started + (i + 1) / args.rate - time.time()))
                    consumer.wait(args.callbacks, timeout_s=60 + args.callbacks / 20)
                    consumer.stop()
                    sent = {
                        e["params"]["downloadUrl"]: e["time"]
                        for e in sim.journal("callback")
                        if e.get("code") == 200
                    }
                    failed = [e for e in sim.journal("callback") if e.get("code") != 200]
        finally:
            cleanup(args.redis, prefix)

    latencies = [t - sent[body["download_url"]] for t, body, _ in consumer.received
                 if body["download_url"] in sent]  # fmt: skip
    ids = [props.get("message_id") for _, _, props in consumer.received]
    elapsed = max((t for t, _, _ in consumer.received), default=started) - started
    row("callbacks", f"{args.callbacks} sent at {args.rate:g}/s, {len(failed)} not answered 200")
    row("messages received", f"{len(consumer.received)} ({len(ids) - len(set(ids))} duplicates)")
    row("latency p50", f"{1000 * percentile(latencies, 50):.1f} ms")
    row("latency p90", f"{1000 * percentile(latencies, 90):.1f} ms")
    row("latency p99", f"{1000 * percentile(latencies, 99):.1f} ms")
    row("latency max", f"{1000 * max(latencies, default=float('nan')):.1f} ms")
    if latencies:
        row("latency mean", f"{1000 * statistics.fmean(latencies):.1f} ms")
    row("throughput", f"{len(consumer.received) / elapsed:.1f} messages/s" if elapsed else "-")


def row(label: str, value: str) -> None:
    print(f"{label:<20}{value}")


if __name__ == "__main__":
    main()

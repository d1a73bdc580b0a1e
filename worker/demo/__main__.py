"""The whole pipeline against the built-in simulator: ``make demo`` (``python -m worker.demo``).

Starts simulator, web, the lifecycle and discovery workers, beat and flower from the Procfile,
books a few meetings seconds ahead through the booking-system helper, and shows each booking's
state and each file as it reaches the downstream queue. Ctrl-C (or ``--once``, after the last
file) stops everything.
"""

from __future__ import annotations

import argparse
import os
import queue
import secrets
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import requests

from worker.demo.supervisor import ProcessGroup

ROOT = Path(__file__).resolve().parents[2]
APP_ID, VOD_TOKEN = "demo-app", "demo-vod-token"
PER_USER_FILES = 1
RATE_PERIOD_S = 10  # the vendor's 5-per-60 s budget, scaled down so polling shows in a demo


def _port(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _node_answers(app: Any, node_prefix: str) -> bool:
    """Whether a worker whose node name starts with ``node_prefix`` answers a ping."""
    replies = app.control.ping(timeout=0.5) or []
    return any(name.startswith(node_prefix) for reply in replies for name in reply)


def _say(started: float, text: str) -> None:
    print(f"[{time.monotonic() - started:6.1f}s] {text}", flush=True)


def _environment(args: argparse.Namespace, prefix: str, ports: dict[str, int]) -> dict[str, str]:
    sim = f"http://127.0.0.1:{ports['simulator']}"
    callback_token = f"demo-callback-{prefix}"
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    return {
        "ANYRTC_APP_ID": APP_ID,
        "ANYRTC_VOD_TOKEN": VOD_TOKEN,
        "ANYRTC_RECORD_API_URL": f"{sim}/anyapi/v1",
        "ANYRTC_VOD_API_URL": f"{sim}/oauth/anyapi/v1",
        "ANYRTC_HTTP_TIMEOUT_S": "5",
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": prefix,
        # Its own broker keys, so the demo's queues never meet a deployment's on this Redis.
        "CELERY_BROKER_KEY_PREFIX": f"{prefix}:broker:",
        "CALLBACK_TOKEN": callback_token,
        "QUERY_RATE_LIMIT": "5",
        "QUERY_RATE_PERIOD_S": str(RATE_PERIOD_S),
        "QUERY_RATE_MARGIN_S": "1",
        "POLL_OVERLAP_S": "300",
        "EXPECTED_TRANSCODE_S": "30",
        "DOWNSTREAM_EXCHANGE": f"recordings-{prefix}",
        "PORT": str(ports["web"]),
        "WEB_BIND": "127.0.0.1",
        "WEB_CONCURRENCY": "2",
        "LIFECYCLE_CONCURRENCY": "16",
        "DISCOVERY_CONCURRENCY": "8",
        "FLOWER_PORT": str(ports["flower"]),
        "FLOWER_ADDRESS": "127.0.0.1",
        "SIMULATOR_PORT": str(ports["simulator"]),
        "SIMULATOR_ARGS": (
            f"--callback-url=http://127.0.0.1:{ports['web']}/AR/V1/av?token={callback_token}"
            f" --transcode-delay={args.transcode} --upload-delay=1"
            f" --rate-limit=5 --rate-period={RATE_PERIOD_S}"
            f" --per-user-files={PER_USER_FILES}"
            f" --callback-drop-rate={args.drop_callbacks}"
        ),
        "BEAT_SCHEDULE_FILE": str(ROOT / ".run" / "demo" / "beat-schedule"),
        "LOG_LEVEL": "INFO",
    }


def _cleanup_keys(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    # The prefix is in every name the demo makes: keys, exchange bindings, the audit queue.
    for key in client.scan_iter(match=f"*{prefix}*", count=1000):
        client.delete(key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.demo", description=__doc__)
    parser.add_argument("--meetings", type=int, default=3, help="how many meetings to book")
    parser.add_argument("--lead", type=float, default=8.0, help="first meeting starts in N s")
    parser.add_argument("--length", type=float, default=8.0, help="each meeting lasts N s")
    parser.add_argument("--transcode", type=float, default=5.0, help="simulated transcoding, s")
    parser.add_argument("--drop-callbacks", type=float, default=0.3, help="share of callbacks lost")
    parser.add_argument("--once", action="store_true", help="stop after the last file")
    parser.add_argument("--timeout", type=float, default=180.0, help="give up after N s (--once)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    prefix = f"demo-{secrets.token_hex(3)}"
    ports = {"simulator": _port(8900), "web": _port(8000), "flower": _port(5555)}
    env = _environment(args, prefix, ports)
    os.environ.update(env)  # this process talks to the same deployment as its children
    group = ProcessGroup(
        env=env, log_dir=ROOT / ".run" / "demo", bin_dir=Path(sys.executable).parent
    )
    stop_requested = False

    def _on_signal(signum: int, frame: Any) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    consumer = None
    try:
        _say(started, f"starting processes from the Procfile (logs in {group.log_dir})")
        sim_url = f"http://127.0.0.1:{ports['simulator']}"
        group.start("simulator")
        group.wait_until(
            "simulator", lambda: requests.get(f"{sim_url}/_admin/health", timeout=1).ok
        )
        web_url = f"http://127.0.0.1:{ports['web']}"
        group.start("web")
        group.wait_until("web", lambda: requests.get(f"{web_url}/healthz", timeout=1).ok)

        from worker.celery import app

        for worker in ("lifecycle", "discovery"):
            group.start(worker)
            group.wait_until(worker, lambda w=worker: _node_answers(app, f"{w}-"))
        group.start("beat")
        flower_url = f"http://127.0.0.1:{ports['flower']}"
        group.start("flower")
        group.wait_until("flower", lambda: requests.get(f"{flower_url}/healthcheck", timeout=1).ok)
        _say(started, f"simulator {sim_url}  callbacks {web_url}/AR/V1/av")
        _say(started, f"Flower: {flower_url}  (tasks, workers, queues; Prometheus at /metrics)")

        from worker.demo.consumer import DownstreamConsumer

        delivered: queue.Queue[tuple[dict[str, Any], str]] = queue.Queue()
        consumer = DownstreamConsumer(
            env["REDIS_URL"],
            env["DOWNSTREAM_EXCHANGE"],
            f"{prefix}-demo-consumer",
            lambda body, key: delivered.put((body, key)),
        )
        consumer.start()

        from anyrtc_recorder_client import BookingClient
        from schedules.keys import LifecycleKeys
        from schedules.state import StateReader
        from worker.redis import redis_from_url

        booking_client = BookingClient(app=app)
        reader = StateReader(redis_from_url(env["REDIS_URL"]), LifecycleKeys(prefix))
        bookings = {}
        now = time.time()
        for i in range(args.meetings):
            booking_id, room_id = f"demo-booking-{i + 1}", f"demo-room-{i + 1}"
            start_at = now + args.lead + 3 * i
            booking_client.schedule(
                booking_id,
                room_id,
                start_at,
                start_at + args.length,
                user_data={"booking_id": booking_id, "title": f"Demo meeting {i + 1}"},
                name_rule="demo_{roomid}_{date}_{random}",
            )
            bookings[booking_id] = room_id
            _say(
                started,
                f"booked {booking_id}: {room_id} in {start_at - now:.0f}s for {args.length:.0f}s",
            )
        expected = len(bookings) * (1 + PER_USER_FILES)
        _say(started, f"waiting for {expected} files on exchange {env['DOWNSTREAM_EXCHANGE']}")

        states: dict[str, str] = {}
        files: list[dict[str, Any]] = []
        deadline = started + args.timeout
        while not stop_requested:
            for booking_id in bookings:
                view = reader.booking(booking_id)
                state = view.state if view else "queued"
                if states.get(booking_id) != state:
                    detail = f" ({view.code}: {view.message})" if view and view.code else ""
                    _say(
                        started,
                        f"booking {booking_id}: {states.get(booking_id, '-')} -> {state}{detail}",
                    )
                    states[booking_id] = state
            while not delivered.empty():
                body, key = delivered.get()
                files.append(body)
                _say(
                    started,
                    f"file {len(files)}/{expected} {key}: room={body.get('room_id')} "
                    f"booking={body.get('booking_id')} type={body.get('type')} "
                    f"via {body.get('source')}: {body.get('file_name')}",
                )
            dead = group.dead()
            if dead:
                _say(started, f"process {dead[0]} died; last lines:\n{group.tail(dead[0])}")
                return 1
            if args.once and len(files) >= expected:
                _say(started, f"all {expected} files delivered; stopping")
                break
            if args.once and time.monotonic() > deadline:
                _say(started, f"timed out with {len(files)}/{expected} files")
                return 1
            time.sleep(0.5)
        return 0
    finally:
        _say(started, "stopping processes")
        if consumer is not None:
            consumer.stop()
            consumer.delete()
        group.stop_all()
        _cleanup_keys(env["REDIS_URL"], prefix)
        _say(started, "stopped")


if __name__ == "__main__":
    raise SystemExit(main())

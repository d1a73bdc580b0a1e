"""The Procfile's ``lifecycle`` and ``discovery`` lines, run as written: each process consumes
its own queues under its own node name, and a booked window is recorded through them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anyrtc_recorder_client import BookingClient
from config.settings import get_settings
from tests.support.waiting import wait_until
from tests.support.workers import running_worker
from worker.demo.procfile import read_procfile

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
QUIET = {"latency_s": 0.0, "jitter_s": 0.0, "error_rate": 0.0, "http_error_rate": 0.0}


@pytest.fixture
def procfile_workers(redis_client: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "LIFECYCLE_CONCURRENCY": "4",
        "DISCOVERY_CONCURRENCY": "2",
    }
    started: dict[str, Any] = {}
    try:
        for name in ("lifecycle", "discovery"):
            with (tmp_path / f"{name}.log").open("wb") as log:
                started[name] = subprocess.Popen(
                    ["sh", "-c", f"exec {read_procfile()[name]}"],
                    cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
        yield started
    finally:
        for process in started.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in started.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def test_each_line_consumes_its_own_queues_and_a_window_is_recorded(
    procfile_workers: dict[str, Any], sim: Any, tmp_path: Path
) -> None:
    from worker.celery import app

    pids = {name: process.pid for name, process in procfile_workers.items()}

    def queues_by_node() -> dict[str, set[str]]:
        for name, process in procfile_workers.items():
            log = (tmp_path / f"{name}.log").read_text(errors="replace")
            assert process.poll() is None, f"{name} exited:\n{log[-2000:]}"
        replies = app.control.inspect(timeout=1.0).active_queues() or {}
        return {node: {q["name"] for q in queues} for node, queues in replies.items()}

    nodes = wait_until(lambda: n if len(n := queues_by_node()) == 2 else None, 60, "two nodes")
    by_prefix = {node.split("@")[0]: queues for node, queues in nodes.items()}
    # The node name carries the process's own pid ($$ in the line; exec keeps it).
    assert by_prefix == {
        f"lifecycle-{pids['lifecycle']}": {"lifecycle", "celery"},
        f"discovery-{pids['discovery']}": {"query", "events"},
    }

    sim.reset(**QUIET)
    settings = get_settings()
    bookings = BookingClient(
        settings.broker_url,
        key_prefix=settings.celery_broker_key_prefix,
        result_backend=settings.result_backend,
    )
    try:
        start_at = time.time() + 2
        result = bookings.schedule("procfile-b1", "procfile-r1", start_at, start_at + 1)
        assert result.get(timeout=10)["verdict"] == "applied"
    finally:
        bookings.close()

    def calls(endpoint: str) -> list[dict[str, Any]]:
        return [e for e in sim.journal(endpoint) if e["params"].get("ArRoomID") == "procfile-r1"]

    wait_until(lambda: calls("stoprecord"), 15, "the window's stop")
    assert [e["verdict"] for e in calls("startrecord")] == ["ok"]
    assert [e["verdict"] for e in calls("stoprecord")] == ["ok"]
    assert calls("startrecord")[0]["time"] >= start_at


def test_the_worker_health_check_pings_this_hosts_worker(redis_client: Any) -> None:
    cli = str(Path(sys.executable).parent / "anyrtc-recorder")
    command = [cli, "healthcheck", "worker", "--timeout=2"]
    assert subprocess.run(command, capture_output=True, timeout=60).returncode == 1
    with running_worker(queues=("lifecycle",), concurrency=2):
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "pong" in done.stdout

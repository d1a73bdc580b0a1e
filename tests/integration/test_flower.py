"""A real Flower against the test broker shows a finished recordings.start, without secrets."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.net import free_port, wait_for_http
from tests.support.workers import running_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
AUTH = ("operator", "flower-test-pw")


@pytest.fixture
def flower(redis_client: Any, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "FLOWER_BASIC_AUTH": f"{AUTH[0]}:{AUTH[1]}"}
    log = (tmp_path / "flower.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker", "flower",
         "--address=127.0.0.1", f"--port={port}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/healthcheck", tmp_path / "flower.log")
        yield base
    finally:
        process.terminate()
        process.wait(15)
        log.close()


def test_flower_shows_a_finished_start_without_secrets(
    flower: str, sim: Any, settings: Any
) -> None:
    from worker.celery import app

    token = settings.anyrtc_vod_token.get_secret_value()
    with running_worker(queues=("lifecycle",)):
        time.sleep(1.5)  # Flower enables events on the worker when it sees it
        result = app.send_task("recordings.start", kwargs={"room_id": "flower-room"})
        result.get(timeout=30)
        deadline = time.monotonic() + 20
        info: dict[str, Any] = {}
        while time.monotonic() < deadline:
            response = requests.get(f"{flower}/api/task/info/{result.id}", auth=AUTH, timeout=5)
            if response.status_code == 200:
                info = response.json()
                if info.get("state") == "SUCCESS":
                    break
            time.sleep(0.3)
        # recordings.start books the action; the dispatcher makes the vendor call right after.
        while time.monotonic() < deadline and not sim.journal("startrecord"):
            time.sleep(0.1)
    assert info.get("state") == "SUCCESS", info
    assert info["name"] == "recordings.start"
    assert "flower-room" in info["kwargs"]
    assert token not in str(info)
    assert [e["endpoint"] for e in sim.journal("startrecord")] == ["startrecord"]

    assert requests.get(f"{flower}/api/task/info/{result.id}", timeout=5).status_code == 401
    metrics = requests.get(f"{flower}/metrics", timeout=5)
    assert metrics.status_code == 200
    assert "flower_events_total" in metrics.text


def test_flower_lists_a_start_the_vendor_refused_as_failure(
    flower: str, vendor: Any, settings: Any
) -> None:
    from worker.anyrtc import results
    from worker.celery import app

    vendor.configure(inject_next=[{"endpoint": "startrecord", "result": results.IP_NOT_ALLOWED}])
    with running_worker(queues=("lifecycle",)):
        time.sleep(1.5)  # Flower enables events on the worker when it sees it
        app.send_task("recordings.start", kwargs={"room_id": "fl-room", "booking_id": "fl-b"})
        deadline = time.monotonic() + 30
        failed: dict[str, Any] = {}
        while time.monotonic() < deadline and not failed:
            response = requests.get(
                f"{flower}/api/tasks", params={"state": "FAILURE"}, auth=AUTH, timeout=5
            )
            failed = response.json() if response.status_code == 200 else {}
            time.sleep(0.3)
    [(task_id, info)] = failed.items()
    assert info["name"] == "recordings.perform" and task_id.startswith("start:fl-b:")
    assert info["state"] == "FAILURE"
    assert "BookingFailed" in info["exception"] and results.IP_NOT_ALLOWED in info["exception"]
    assert settings.anyrtc_vod_token.get_secret_value() not in str(info)
    metrics = requests.get(f"{flower}/metrics", timeout=5).text
    failed_events = [
        line
        for line in metrics.splitlines()
        if line.startswith("flower_events_total") and 'type="task-failed"' in line
    ]
    assert any('task="recordings.perform"' in line for line in failed_events), failed_events

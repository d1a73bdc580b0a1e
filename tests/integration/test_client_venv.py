"""The booking client installed alone, as a booking system installs it: a fresh virtualenv with
nothing but clients/python and what it pulls from the index, booking a meeting against a real
lifecycle worker of the product."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from config.celery import DEFAULT_QUEUE, LIFECYCLE_QUEUE
from config.settings import get_settings
from schedules import Lifecycle
from tests.support.run import RUN_ID, UNPREFIXED_REDIS_URL
from tests.support.waiting import wait_until
from tests.support.workers import running_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIENT_ROOT = Path(__file__).resolve().parents[2] / "clients" / "python"
# What a booking system's code does; run by the venv's python, so only the client is importable.
BOOK = """
import json, sys
from datetime import datetime, timezone
from anyrtc_recorder_client import BookingClient

broker, backend, prefix, booking, room, start, end = sys.argv[1:]
bookings = BookingClient(broker, key_prefix=prefix, result_backend=backend)
try:
    at = lambda epoch: datetime.fromtimestamp(float(epoch), timezone.utc)
    result = bookings.schedule(booking, room, at(start), at(end), user_data={"from": "venv"})
    print(json.dumps(result.get(timeout=20)))
finally:
    bookings.close()
"""

# A booking system with nothing but Celery and the URL: no queue, no transport options, and not
# even this project's client package.
PLAIN = """
import json, sys
from celery import Celery

url, booking, room, start, end = sys.argv[1:]
app = Celery(broker=url, backend=url)
try:
    result = app.send_task("recordings.schedule", kwargs={
        "booking_id": booking, "room_id": room, "start_at": float(start), "end_at": float(end),
    })
    print(json.dumps(result.get(timeout=20)))
finally:
    app.close()
"""


def outside_env() -> dict[str, str]:
    """This environment without what would make the repository or our venv importable."""
    leave_out = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    return {k: v for k, v in os.environ.items() if k not in leave_out}


def run(python: Path, *args: str, cwd: Path, timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), *args],
        cwd=cwd,
        env=outside_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


@pytest.fixture(scope="session")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a virtualenv holding only anyrtc-recorder-client (built once a session)."""
    venv = tmp_path_factory.mktemp("client-venv") / "venv"
    # No pip of its own (ensurepip takes seconds): this interpreter's pip installs into it.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    python = venv / "bin" / "python"
    installed = run(
        Path(sys.executable),
        *("-m", "pip", "--python", str(python), "install", "--quiet", str(CLIENT_ROOT)),
        cwd=venv,
        timeout_s=600,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python


@pytest.mark.parametrize("module", ["config", "worker", "schedules"])
def test_the_product_is_not_importable_beside_the_client(
    client_python: Path, tmp_path: Path, module: str
) -> None:
    result = run(client_python, "-c", f"import {module}", cwd=tmp_path)
    assert result.returncode != 0
    assert f"No module named '{module}'" in result.stderr


def test_the_client_comes_from_the_venv(client_python: Path, tmp_path: Path) -> None:
    probe = "import anyrtc_recorder_client as c; print(c.__file__)"
    result = run(client_python, "-c", probe, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(client_python.parents[1])


def test_a_meeting_booked_from_the_client_venv_is_recorded(
    client_python: Path, tmp_path: Path, redis_client: redis.Redis, sim: Any
) -> None:
    sim.reset(latency_s=0.0, jitter_s=0.0, error_rate=0.0, http_error_rate=0.0)
    settings = get_settings()
    booking, room = "venv-b1", "venv-r1"
    with running_worker(queues=(LIFECYCLE_QUEUE,), concurrency=4):
        start_at = time.time() + 2
        booked = run(
            client_python,
            "-c",
            BOOK,
            settings.broker_url,
            settings.result_backend,
            settings.celery_broker_key_prefix,
            booking,
            room,
            str(start_at),
            str(start_at + 1),
            cwd=tmp_path,
        )
        assert booked.returncode == 0, booked.stderr
        assert json.loads(booked.stdout)["verdict"] == "applied"

        def calls(endpoint: str) -> list[dict[str, Any]]:
            return [e for e in sim.journal(endpoint) if e["params"].get("ArRoomID") == room]

        wait_until(lambda: calls("stoprecord"), 15, "the window's stop")
        [started], [stopped] = calls("startrecord"), calls("stoprecord")
        assert started["verdict"] == stopped["verdict"] == "ok"
        assert started["time"] >= start_at
        assert json.loads(started["params"]["UserData"]) == {"from": "venv"}
        reader = Lifecycle(settings, redis_client).reader
        wait_until(lambda: (v := reader.booking(booking)) and v.state == "stopped", 5, "stopped")


@pytest.fixture
def unprefixed_redis() -> Iterator[redis.Redis]:
    """The tier's own database, where the worker runs at the default: no broker key prefix."""
    client = redis.Redis.from_url(UNPREFIXED_REDIS_URL, decode_responses=True)
    yield client
    for key in client.scan_iter(match=f"*{RUN_ID}*", count=1000):
        client.delete(key)
    for key in client.scan_iter(match="celery-task-meta-*", count=1000):
        client.delete(key)
    client.close()


def test_a_plain_celery_client_books_by_task_name_alone(
    client_python: Path, tmp_path: Path, unprefixed_redis: redis.Redis, sim: Any
) -> None:
    sim.reset(latency_s=0.0, jitter_s=0.0, error_rate=0.0, http_error_rate=0.0)
    booking, room = f"plain-b-{RUN_ID}", f"plain-r-{RUN_ID}"
    defaults = {"REDIS_URL": UNPREFIXED_REDIS_URL, "CELERY_BROKER_KEY_PREFIX": ""}
    queues = (LIFECYCLE_QUEUE, DEFAULT_QUEUE)  # the Procfile's lifecycle line
    with running_worker(queues=queues, concurrency=4, env=defaults):
        start_at = time.time() + 2
        script = (PLAIN, UNPREFIXED_REDIS_URL, booking, room, str(start_at), str(start_at + 1))
        booked = run(client_python, "-c", *script, cwd=tmp_path)
        assert booked.returncode == 0, booked.stderr
        assert json.loads(booked.stdout)["verdict"] == "applied"

        def calls(endpoint: str) -> list[dict[str, Any]]:
            return [e for e in sim.journal(endpoint) if e["params"].get("ArRoomID") == room]

        wait_until(lambda: calls("stoprecord"), 15, "the window's stop")
        assert [e["verdict"] for e in calls("startrecord")] == ["ok"]

"""``LOG_FORMAT=json`` on a real worker: every line one JSON object, Celery's own included, with
the booking, room and action as fields and task data as nested JSON."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from schedules.keys import LifecycleKeys
from schedules.state import StateReader
from tests.support.waiting import wait_until
from tests.support.workers import running_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_every_worker_line_is_json_with_the_bookings_fields(
    redis_client: redis.Redis, vendor: Any, settings: Any
) -> None:
    from worker.celery import app

    reader = StateReader(redis_client, LifecycleKeys(settings.redis_key_prefix))
    with running_worker(queues=("lifecycle",), env={"LOG_FORMAT": "json"}) as worker:
        now = time.time()
        app.send_task(
            "recordings.schedule",
            kwargs={"booking_id": "jl-b", "room_id": "jl-r", "start_at": now + 1,
                    "end_at": now + 2},
        ).get(timeout=15)  # fmt: skip
        wait_until(lambda: getattr(reader.booking("jl-b"), "state", "") == "stopped", 15.0)
        time.sleep(0.3)
        text = worker.log()
    lines = [line for line in text.splitlines() if line.strip()]
    assert [line for line in lines if not line.startswith("{")] == []
    entries = [json.loads(line) for line in lines]  # every line parses
    assert all(isinstance(e, dict) and "level" in e and "message" in e for e in entries)
    about = [e for e in entries if e.get("booking_id") == "jl-b"]
    loggers = {e["logger"] for e in about}
    assert "celery.app.trace" in loggers  # Celery's "succeeded" lines
    assert any(e.get("action", "").startswith("start:jl-b:") for e in about)
    schedule = next(e for e in about if e.get("task_name") == "recordings.schedule")
    assert schedule["room_id"] == "jl-r"
    succeeded = next(e for e in about if "succeeded" in e["message"] and "data" in e)
    assert isinstance(succeeded["data"], dict)
    assert settings.anyrtc_vod_token.get_secret_value() not in text

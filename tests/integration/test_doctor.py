"""``anyrtc-recorder doctor`` as an operator runs it: a subprocess with the deployment's env."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from schedules.keys import LifecycleKeys
from tests.support.workers import running_worker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def doctor(env: dict[str, str]) -> tuple[int, Any, str]:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "anyrtc-recorder"), "--json", "doctor"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, json.loads(done.stdout), done.stdout + done.stderr


def test_doctor_reports_a_healthy_deployment(redis_client: Any, sim: Any) -> None:
    env = {**os.environ, "CALLBACK_TOKEN": "doctor-test-callback-token"}
    with running_worker(concurrency=2, name="all-doctor"):
        code, checks, output = doctor(env)
    status = {c["name"]: c["status"] for c in checks}
    assert status == {
        "settings": "ok",
        "redis": "ok",
        "broker": "ok",
        "downstream": "ok",
        "vendor": "ok",
        "workers": "ok",
        "callbacks": "ok",
        "silence": "ok",
        "backlog": "ok",
    }
    assert code == 0
    (query,) = sim.journal("getVodListByTime")
    assert query["code"] == 200
    assert "doctor-test-callback-token" not in output


def test_doctor_fails_when_no_worker_runs(redis_client: Any, sim: Any) -> None:
    code, checks, _ = doctor(dict(os.environ))
    workers = next(c for c in checks if c["name"] == "workers")
    assert workers["status"] == "fail" and "no worker answered" in workers["detail"]
    assert code == 1


def test_doctor_fails_when_messages_wait_on_celerys_default_queue(
    redis_client: Any, sim: Any
) -> None:
    from celery import Celery

    from worker.celery import app

    # A plain Celery client on the deployment's broker, without the product's routes.
    plain = Celery(broker=app.conf.broker_url)
    plain.conf.broker_transport_options = app.conf.broker_transport_options
    # Workers started with an older Procfile line, which did not consume Celery's default queue.
    older_queues = ["lifecycle", "query", "events"]
    with running_worker(older_queues, concurrency=2, name="all-doctor"):
        plain.send_task("recordings.start", kwargs={"room_id": "lost"})
        code, checks, _ = doctor(dict(os.environ))
    workers = next(c for c in checks if c["name"] == "workers")
    assert workers["status"] == "fail"
    assert "1 message(s) wait on 'celery', which no worker consumes" in workers["detail"]
    assert code == 1


def test_doctor_names_each_queue_no_worker_consumes(redis_client: Any, sim: Any) -> None:
    """The Procfile's two workers: with only ``lifecycle`` up, the doctor says what will not
    happen; with ``discovery`` up too, every queue has a consumer."""
    with running_worker(["lifecycle", "celery"], concurrency=2, name="lifecycle-doctor"):
        code, checks, _ = doctor(dict(os.environ))
        workers = next(c for c in checks if c["name"] == "workers")
        assert workers["status"] == "fail" and code == 1
        assert (
            "no worker consumes query (polls and room look-ups will not run)" in workers["detail"]
        )
        assert "no worker consumes events" in workers["detail"]
        assert "no worker consumes lifecycle" not in workers["detail"]
        assert "lifecycle: lifecycle-doctor@" in workers["detail"]
        with running_worker(["query", "events"], concurrency=2, name="discovery-doctor"):
            code, checks, _ = doctor(dict(os.environ))
    workers = next(c for c in checks if c["name"] == "workers")
    assert workers["status"] == "ok", workers
    assert "query: discovery-doctor@" in workers["detail"]
    assert "events: discovery-doctor@" in workers["detail"]
    assert code == 0


def test_doctor_warns_of_a_booked_action_nobody_claimed(
    redis_client: Any, sim: Any, settings: Any
) -> None:
    keys = LifecycleKeys(settings.redis_key_prefix)
    redis_client.zadd(keys.due, {"start:forgotten:1": time.time() - 60})
    code, checks, _ = doctor(dict(os.environ))
    assert code == 1
    backlog = next(c for c in checks if c["name"] == "backlog")
    assert backlog["status"] == "warn"
    assert backlog["detail"].startswith("1 booked action(s) more than 10s past due and unclaimed")
    # A warning, not a failure (only the missing workers fail here); rejected callbacks are
    # counted beside it.
    assert {c["name"] for c in checks if c["status"] == "fail"} == {"workers"}
    assert backlog["detail"].endswith("0 callback(s) rejected: anyrtc-recorder rejects")


def test_doctor_does_not_warn_of_replayed_dead_letters(
    redis_client: Any, sim: Any, settings: Any
) -> None:
    from schedules import Lifecycle

    ctx = Lifecycle(settings, redis_client)
    entry = ctx.deadletters.add(
        task="recordings.cancel",
        kwargs={"booking_id": "dl-b"},
        error="InvalidBooking",
        message="bad",
        now=time.time(),
    )
    _, checks, _ = doctor(dict(os.environ))
    backlog = next(c for c in checks if c["name"] == "backlog")
    assert backlog["status"] == "warn" and "1 dead letter(s) not replayed" in backlog["detail"]
    ctx.deadletters.mark_replayed(entry, now=time.time(), outcome={"verdict": "applied"})
    _, checks, _ = doctor(dict(os.environ))
    backlog = next(c for c in checks if c["name"] == "backlog")
    assert backlog["status"] == "ok" and "dead letters 0 (replayed 1)" in backlog["detail"]


def test_doctor_names_a_wrong_token_without_printing_it(redis_client: Any, sim: Any) -> None:
    env = {**os.environ, "ANYRTC_VOD_TOKEN": "wrong-token-4242"}
    code, checks, output = doctor(env)
    vendor = next(c for c in checks if c["name"] == "vendor")
    assert vendor["status"] == "fail"
    assert "281" in vendor["detail"] and "ANYRTC_VOD_TOKEN" in vendor["detail"]
    assert code == 1
    assert "wrong-token-4242" not in output
    assert os.environ["ANYRTC_VOD_TOKEN"] not in output


def test_doctor_stops_at_missing_settings(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYRTC_")}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "anyrtc-recorder"), "--json", "doctor"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    checks = json.loads(done.stdout)
    assert done.returncode == 1
    assert checks == [
        {
            "name": "settings",
            "status": "fail",
            "detail": "configuration error: ANYRTC_APP_ID is not set (required); "
            "ANYRTC_VOD_TOKEN is not set (required)",
        }
    ]

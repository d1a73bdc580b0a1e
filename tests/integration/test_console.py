"""The console's operator questions on the real Redis, as an operator runs them: a subprocess
whose environment has ``REDIS_URL`` and the key prefix only (no vendor credentials)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from config.settings import get_settings
from schedules import Lifecycle, schedule
from schedules.layout import FIELDS
from tests.support.old_layout import store_old_layout
from worker.discovery.fanout import Outbox
from worker.discovery.keys import DiscoveryKeys
from worker.discovery.limiter import SlidingWindowLimiter
from worker.discovery.ops import OpsLog
from worker.errors import InvalidBooking

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "anyrtc-recorder")


@pytest.fixture
def ctx(redis_client: redis.Redis) -> Lifecycle:
    return Lifecycle(get_settings(), redis_client)


@pytest.fixture
def keys(ctx: Lifecycle) -> DiscoveryKeys:
    return DiscoveryKeys(ctx.settings.redis_key_prefix)


def console(*argv: str) -> tuple[int, str, str]:
    """Run the console with REDIS_URL and REDIS_KEY_PREFIX only."""
    env = {
        "PATH": os.environ["PATH"],
        "REDIS_URL": os.environ["REDIS_URL"],
        "REDIS_KEY_PREFIX": os.environ["REDIS_KEY_PREFIX"],
    }
    done = subprocess.run(
        [CLI, *argv], cwd="/", env=env, capture_output=True, text=True, timeout=60
    )
    return done.returncode, done.stdout, done.stderr


def _message(fid: str, bookings: list[str], room: str) -> str:
    return json.dumps(
        {"message_id": fid, "status": 2, "room_id": room, "booking_ids": bookings,
         "file_name": f"{fid}.mp4", "schema": "recording.v1"}
    )  # fmt: skip


def test_show_falls_back_to_the_bookings_dead_letters(ctx: Lifecycle) -> None:
    start = time.time() + 60
    with pytest.raises(InvalidBooking):
        schedule(ctx, booking_id="dl1", room_id="r", start_at=start, end_at=start + 60,
                 name_rule="bad")  # fmt: skip
    code, out, err = console("show", "dl1")
    assert code == 0, err
    assert "no booking 'dl1': its event was dead-lettered" in out and "recordings.schedule" in out
    code, out, _ = console("show", "dl1", "--json")
    data = json.loads(out)
    assert data["booking"] is None and [e["booking_id"] for e in data["dead_letters"]] == ["dl1"]
    code, out, err = console("show", "nobody", "--json")
    assert code == 1 and json.loads(out) == {
        "error": "no booking 'nobody' and no dead letter for it",
        "status": 1,
    }


def test_show_says_a_vendor_error_once(ctx: Lifecycle, redis_client: redis.Redis) -> None:
    start = time.time() + 60
    schedule(ctx, booking_id="v1", room_id="rv", start_at=start, end_at=start + 60)
    reply = "bad parameter: ArRoomID"
    fields = {FIELDS["code"]: reply, FIELDS["message"]: reply}
    redis_client.hset(ctx.keys.booking("v1"), mapping=fields)
    code, out, _ = console("show", "v1")
    assert code == 0 and f"{reply}: {reply}" not in out and reply in out


def test_migrate_bookings_moves_the_earlier_layout_once(ctx: Lifecycle) -> None:
    start = time.time() + 3600
    store_old_layout(ctx, "mig-1", start, start + 60, kwargs={"booking_id": "mig-1"})
    code, out, _ = console("migrate-bookings", "--json")
    assert code == 0 and json.loads(out) == {"moved": 1, "skipped": {}}
    code, out, _ = console("show", "mig-1")
    assert code == 0 and "scheduled" in out and "start:mig-1:1" in out
    code, out, _ = console("migrate-bookings")
    assert code == 0 and out.startswith("moved 0 booking(s)")


def test_booking_counts_finds_a_drift_and_rebuilds_from_the_scan(
    ctx: Lifecycle, redis_client: redis.Redis
) -> None:
    start = time.time() + 3600
    schedule(ctx, booking_id="cnt-1", room_id="rc", start_at=start, end_at=start + 60)
    code, out, _ = console("booking-counts")
    assert code == 0 and "kept counts match the scan" in out
    redis_client.hincrby(ctx.keys.counts, "recording", 2)
    code, out, _ = console("booking-counts", "--json")
    report = json.loads(out)
    assert code == 1 and report["drifted"] == ["recording"]
    assert report["kept"]["recording"] == 2 and report["scanned"]["scheduled"] == 1
    code, out, _ = console("booking-counts", "--rebuild")
    assert code == 0 and "rebuilt from the scan (recording differed)" in out
    assert redis_client.hget(ctx.keys.counts, "recording") == "0"
    assert console("booking-counts")[0] == 0


def test_files_lists_a_bookings_delivered_files(
    ctx: Lifecycle, keys: DiscoveryKeys, redis_client: redis.Redis
) -> None:
    outbox = Outbox(redis_client, keys)
    assert outbox.claim("f1", _message("f1", ["fb", "other"], "rf"), "recording.ready", "callback")
    outbox.mark_sent("f1")
    assert outbox.claim("f2", _message("f2", ["other"], "rf"), "recording.ready", "poll")
    code, out, err = console("files", "fb", "--json")
    assert code == 0, err
    [item] = json.loads(out)
    assert item["message_id"] == "f1" and item["source"] == "callback"
    assert item["state"] == "sent" and item["sent_at"] == pytest.approx(time.time(), abs=30)
    code, out, _ = console("files", "fb")
    assert "f1" in out and "callback" in out and "ready" in out
    assert console("files", "none")[1].strip() == "no file delivered for booking none"


def test_budget_shows_used_limit_next_free_slot_and_waiting_lookups(
    ctx: Lifecycle, keys: DiscoveryKeys, redis_client: redis.Redis
) -> None:
    settings = ctx.settings
    limiter = SlidingWindowLimiter.from_settings(settings, redis_client)
    for _ in range(settings.query_rate_limit):
        assert limiter.acquire(settings.anyrtc_app_id).admitted
    redis_client.hset(keys.lookup("room-x"), mapping={"beg_ms": 1, "end_ms": 2})
    code, out, err = console("budget", "--json")
    assert code == 0, err
    [budget] = json.loads(out)
    assert budget["app_id"] == settings.anyrtc_app_id
    assert (budget["used"], budget["limit"]) == (settings.query_rate_limit,) * 2
    window = settings.query_rate_period_s + settings.query_rate_margin_s
    assert 0 < budget["next_free_s"] <= window
    assert budget["waiting_lookups"] == 1
    code, out, _ = console("budget")
    assert f"{settings.query_rate_limit}/{settings.query_rate_limit} slots used" in out
    assert "next free slot in" in out and "1 room look-up(s) waiting" in out


def test_rejects_lists_refused_callbacks_with_reasons(
    keys: DiscoveryKeys, redis_client: redis.Redis
) -> None:
    ops = OpsLog(redis_client, keys)
    ops.reject("missing or wrong callback token", 401, b"{}", remote="10.0.0.9")
    ops.reject("body is not valid JSON", 400, b"nope", remote="10.0.0.9")
    code, out, err = console("rejects", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["total"] == 2
    assert [e["reason"] for e in data["rejects"]] == [
        "body is not valid JSON",
        "missing or wrong callback token",
    ]
    code, out, _ = console("rejects")
    assert "2 callback(s) rejected" in out and "401" in out and "10.0.0.9" in out


def test_outbox_lists_unpublished_messages_and_publishes_one_again(
    capsys: pytest.CaptureFixture[str], keys: DiscoveryKeys, redis_client: redis.Redis
) -> None:
    from worker.cli import main

    outbox = Outbox(redis_client, keys)
    assert outbox.claim("p1", _message("p1", ["pb"], "rp"), "recording.ready", "poll")
    code, out, err = console("outbox", "list", "--json")
    assert code == 0, err
    [item] = json.loads(out)
    assert item["message_id"] == "p1" and item["source"] == "poll" and item["booking_ids"] == ["pb"]
    try:
        assert main(["outbox", "publish", "p1", "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == {"published": "p1"}
        assert outbox.get("p1")["state"] == "sent"
        assert console("outbox", "list")[1].strip().startswith("outbox empty")
        assert main(["outbox", "publish", "p1"]) == 1
        assert "not waiting in the outbox" in capsys.readouterr().err
    finally:
        redis_client.delete(f"{get_settings().downstream_exchange}.audit")


def test_outbox_list_shows_booking_events_waiting_for_the_teller(
    keys: DiscoveryKeys, redis_client: redis.Redis
) -> None:
    from schedules.keys import LifecycleKeys

    told = LifecycleKeys(get_settings().redis_key_prefix).outbox
    at = time.time() - 400
    facts = {"message_id": "bk:b9:1:1", "at": at, "booking_id": "b9", "room_id": "r9",
             "state": "failed", "code": "247"}  # fmt: skip
    redis_client.zadd(told, {json.dumps(facts): at * 1000})
    code, out, err = console("outbox", "list", "--json")
    assert code == 0, err
    [item] = json.loads(out)
    assert (item["kind"], item["event"], item["booking_ids"]) == (
        "booking",
        "booking.failed",
        ["b9"],
    )
    assert item["message_id"] == "bk:b9:1:1" and item["told_at"] == pytest.approx(at)
    code, out, _ = console("outbox", "list")
    assert "booking events not yet published" in out and "booking.failed" in out and "7m ago" in out


def test_every_read_only_command_runs_without_vendor_credentials() -> None:
    for argv in (["upcoming"], ["active"], ["deadletters", "list"], ["outbox", "list"],
                 ["rejects"], ["budget"], ["files", "x"]):  # fmt: skip
        code, out, err = console(*argv, "--json")
        assert code == 0, (argv, err)
        json.loads(out)


def test_errors_are_said_once_and_are_json_with_json(ctx: Lifecycle) -> None:
    code, out, err = console("--json", "schedule", "b", "r", "1", "2")
    assert code == 2 and json.loads(out)["error"].startswith("configuration error:")
    assert err == ""
    code, out, _ = console("--json", "no-such-command")
    assert code == 2 and "invalid choice" in json.loads(out)["error"]
    code, _, err = console("show", "nobody")
    assert code == 1 and err.count("no booking") == 1

"""The operator console on the real Redis: tables for people, JSON for scripts, exit codes."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from config.settings import get_settings
from schedules import Lifecycle, schedule
from worker.cli import build_parser, main
from worker.errors import InvalidBooking

pytestmark = pytest.mark.integration


@pytest.fixture
def ctx(redis_client: redis.Redis) -> Lifecycle:
    return Lifecycle(get_settings(), redis_client)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_schedule_upcoming_show_cancel(capsys: pytest.CaptureFixture[str], ctx: Lifecycle) -> None:
    start = time.time() + 3600
    code, out, _ = run(
        capsys,
        "schedule",
        "b1",
        "room-1",
        str(start),
        str(start + 600),
        "--user-data-json",
        '{"course": "c1"}',
        "--name-rule",
        "ar_{roomid}_{date}",
    )
    assert code == 0 and "booking b1: applied" in out
    code, out, _ = run(capsys, "upcoming")
    assert code == 0
    header, row = out.strip().splitlines()
    assert header.split()[:4] == ["START", "DUE", "IN", "BOOKING"]
    assert "b1" in row and "room-1" in row and "in 60m" in row
    code, out, _ = run(capsys, "upcoming", "--json")
    [item] = json.loads(out)
    assert item["booking_id"] == "b1" and item["due"] == pytest.approx(start)
    assert item["params"]["user_data"] == {"course": "c1"}

    code, out, _ = run(capsys, "show", "b1")
    assert code == 0 and "state             scheduled" in out and "history:" in out
    code, out, _ = run(capsys, "--json", "cancel", "b1")
    assert json.loads(out)["state"] == "cancelled"
    code, out, _ = run(capsys, "show", "b1", "--json")
    shown = json.loads(out)
    assert shown["booking"]["state"] == "cancelled"
    assert [e["event"] for e in shown["history"]] == ["schedule", "cancel"]
    assert run(capsys, "upcoming")[1].strip() == "no upcoming windows"


def test_bad_input_from_the_console_is_reported_not_dead_lettered(
    capsys: pytest.CaptureFixture[str], ctx: Lifecycle
) -> None:
    code, out, err = run(
        capsys, "schedule", "b1", "r1", "2031-01-01T10:00:00", "2031-01-01T11:00:00Z"
    )
    assert code == 2 and out == ""
    assert "no UTC offset" in err and "Traceback" not in err
    assert ctx.deadletters.count() == 0
    code, _, err = run(capsys, "show", "missing")
    assert code == 1 and "no booking 'missing'" in err


def test_deadletters_list_and_replay_with_a_correction(
    capsys: pytest.CaptureFixture[str], ctx: Lifecycle
) -> None:
    start = time.time() + 60
    with pytest.raises(InvalidBooking):
        schedule(
            ctx, booking_id="b9", room_id="r9", start_at=start, end_at=start + 60, name_rule="bad"
        )
    code, out, _ = run(capsys, "deadletters", "list")
    assert code == 0 and "b9" in out and "InvalidBooking" in out
    [entry] = json.loads(run(capsys, "deadletters", "list", "--json")[1])

    code, _, err = run(capsys, "deadletters", "replay", entry["id"])
    assert code == 2 and "name_rule" in err
    assert ctx.reader.booking("b9") is None

    code, out, _ = run(
        capsys, "deadletters", "replay", entry["id"], "--set", "name_rule=ar_{roomid}_{date}"
    )
    assert code == 0 and "replayed as recordings.schedule" in out
    view = ctx.reader.booking("b9")
    assert view is not None and view.state == "scheduled"
    assert view.params["name_rule"] == "ar_{roomid}_{date}"
    [after] = ctx.deadletters.list()
    assert after["replayed_at"] is not None and after["replay"]["verdict"] == "applied"
    code, _, err = run(capsys, "deadletters", "replay", "404")
    assert code == 1 and "no dead letter" in err
    assert run(capsys, "deadletters", "delete", entry["id"])[0] == 0
    assert ctx.deadletters.count() == 0
    assert run(capsys, "deadletters", "delete", entry["id"])[0] == 1


def test_active_lists_holders_and_recording_rooms(
    capsys: pytest.CaptureFixture[str], ctx: Lifecycle, sim: Any
) -> None:
    from schedules.testing import InProcessRunner

    now = time.time()
    schedule(ctx, booking_id="a1", room_id="ra", start_at=now - 1, end_at=now + 600)
    InProcessRunner(ctx).step()
    code, out, _ = run(capsys, "active")
    assert code == 0
    assert "a1" in out and "recording" in out and "ra" in out
    data = json.loads(run(capsys, "active", "--json")[1])
    assert [b["booking_id"] for b in data["bookings"]] == ["a1"]
    assert data["rooms"][0]["holders"] == ["a1"]


def test_a_new_subcommand_module_registers_with_one_line() -> None:
    import worker.cli as cli

    assert cli.COMMAND_MODULES[:2] == ("worker.cli.bookings", "worker.cli.deadletters")
    names = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert {"schedule", "cancel", "upcoming", "active", "show", "deadletters"} <= names

"""recording.missing and callback silence, in one process: real Redis, the simulator over
loopback, a kombu customer; discovery on a clock the test moves (no sleeping on deadlines).

The same flows through real worker processes are in test_missing_worker.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.integration.test_discovery_flow import Harness
from tests.support.callbacks import callback_body
from tests.support.scaled import scaled_discovery
from worker.discovery.missing_message import ROUTING_KEY, SCHEMA, missing_message_id

pytestmark = pytest.mark.integration

MISSING_AFTER_S = 3.0


@pytest.fixture
def tuned(settings: Any) -> Any:
    return scaled_discovery(settings, missing_after_s=MISSING_AFTER_S, callback_silence_s=60.0)


@pytest.fixture
def h(tuned: Any, sim: Any, redis_client: redis.Redis) -> Iterator[Harness]:
    sim.configure(rate_limit=5, rate_period_s=1.0, upload_delay_s=0.1, transcode_delay_s=0.2)
    harness = Harness(tuned, sim, redis_client)
    harness.disc.publisher.declare()
    yield harness
    harness.disc.publisher.close()
    redis_client.delete(f"{tuned.downstream_exchange}.audit")


def room_lookups(h: Harness, room: str) -> list[dict[str, Any]]:
    return [c for c in h.sim.journal("getVodInfoByRoomId") if c["params"]["roomId"] == room]


def judge(h: Harness) -> dict[str, str]:
    """One watch-loop round past the judgement time, then the look-ups due."""
    h.clock.advance(MISSING_AFTER_S + 1)
    enrolled, _ = h.disc.watch_loop.step()
    h.run_queued()
    return enrolled


def test_a_recording_that_yields_no_file_gives_one_missing_message_after_one_look_up(
    h: Harness,
) -> None:
    h.sim.configure(no_file_rooms=["room-x"])
    h.record_ours("room-x", bookings=("bk-x",))
    assert h.disc.watch_loop.step()[0] == {}  # not due yet
    [(session_id, verdict)] = judge(h).items()
    assert verdict == "lookup"
    assert len(room_lookups(h, "room-x")) == 1
    [(body, message)] = h.consume(expect=1)
    assert message.delivery_info["routing_key"] == ROUTING_KEY
    assert body["schema"] == SCHEMA and body["message_id"] == missing_message_id(session_id)
    assert (body["room_id"], body["booking_id"], body["booking_ids"]) == (
        "room-x",
        "bk-x",
        ["bk-x"],
    )
    assert body["room_lookup"]["outcome"] == "no_file"
    assert body["tried"] == ["callback", "time_poll", "room_lookup"]
    # Later rounds (another worker, a restart) change nothing.
    assert judge(h) == {}
    h.disc.lookup_loop.drain()
    assert h.disc.missing.drain() == []
    assert len(room_lookups(h, "room-x")) == 1
    assert h.consume(expect=0, timeout=0.5) == []


def test_a_session_whose_file_went_out_is_found_without_a_look_up(h: Harness) -> None:
    h.record_ours("room-f", bookings=("bk-f",))
    h.visible(1, final=True)
    assert h.disc.poller.run("poll-1").status == "done"
    [(body, _)] = h.consume(expect=1)
    assert body["room_id"] == "room-f"
    assert list(judge(h).values()) == ["found"]
    assert room_lookups(h, "room-f") == []
    assert h.consume(expect=0, timeout=0.5) == []


def test_a_file_found_by_the_judges_look_up_is_delivered_and_nothing_is_missing(
    h: Harness,
) -> None:
    h.record_ours("room-l", bookings=("bk-l",))
    h.visible(1, final=True)  # no poll ran: only the judge's look-up finds it
    assert list(judge(h).values()) == ["lookup"]
    assert len(room_lookups(h, "room-l")) == 1
    [(body, message)] = h.consume(expect=1)
    assert message.delivery_info["routing_key"] == "recording.ready"
    assert (body["room_id"], body["source"]) == ("room-l", "room")
    [session] = h.log.for_room("room-l")
    assert h.redis.hget(h.disc.keys.missing(session.session_id), "state") == "found"
    assert h.redis.zcard(h.disc.keys.missing_queue) == 0
    assert h.consume(expect=0, timeout=0.5) == []


def test_a_file_after_the_missing_message_is_delivered_and_nothing_else_follows(
    h: Harness,
) -> None:
    h.sim.configure(no_file_rooms=["room-y"])
    start = time.time()
    h.record_ours("room-y", bookings=("bk-y",))
    stop = time.time()
    judge(h)
    [(missing, _)] = h.consume(expect=1)
    assert missing["schema"] == SCHEMA
    # The vendor produces the file after all.
    h.sim.configure(no_file_rooms=[])
    h.sim.record("room-y", start, stop)
    h.visible(1, final=True)
    assert h.disc.poller.run("poll-late").status == "done"
    h.run_queued()
    [(late, message)] = h.consume(expect=1)
    assert message.delivery_info["routing_key"] == "recording.ready"
    assert late["room_id"] == "room-y" and late["booking_id"] == "bk-y"
    assert judge(h) == {}
    assert h.consume(expect=0, timeout=0.5) == []


def test_sessions_the_product_did_not_start_or_stop_for_sure_are_not_judged(h: Harness) -> None:
    h.sim.configure(no_file_rooms=["room-u", "room-s"])
    h.vendor.start_record("room-u")
    h.log.started("room-u", time.time(), ["bk-u"], uncertain=True)
    h.vendor.stop_record("room-u")
    h.log.stopped("room-u", time.time())
    h.vendor.start_record("room-s")
    h.log.started("room-s", time.time(), ["bk-s"])
    h.vendor.stop_record("room-s")
    h.log.stopped("room-s", time.time(), confirmed=False)
    h.sim.record("auto-room", time.time() - 5, time.time())  # console auto-recording
    assert judge(h) == {}
    assert h.sim.journal("getVodInfoByRoomId") == []
    assert h.consume(expect=0, timeout=0.5) == []


def test_callback_silence_warns_once_per_episode_and_clears_on_a_callback(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="worker.discovery.silence")
    h.sim.configure(per_user_files=1)
    h.record_ours("room-q", bookings=("bk-q",))
    h.visible(2, final=True)
    assert h.disc.poller.run("poll-q").status == "done"
    assert len(h.consume(expect=2)) == 2
    assert h.disc.silence.check() is False  # files without callbacks, but not for long yet
    h.clock.advance(61)
    assert h.disc.silence.check() is True
    assert h.disc.silence.check() is False  # once per episode
    assert h.disc.silence.status().warned
    [raised] = [r.getMessage() for r in caplog.records]
    assert "no vendor callback for 60 s while 2 files" in raised
    assert "callback URL in the vendor console" in raised and "firewall" in raised
    file = h.sim_files("room-q")[0]
    h.disc.callback(callback_body(file))
    assert not h.disc.silence.status().warned
    assert "callbacks arrive again" in caplog.records[-1].getMessage()
    h.disc.callback(callback_body(file))
    assert len(caplog.records) == 2  # cleared once


def test_callback_silence_is_not_raised_when_callbacks_are_not_expected(h: Harness) -> None:
    h.disc.silence.expected = False
    h.sim.configure(per_user_files=1)
    h.record_ours("room-n")
    h.visible(2, final=True)
    assert h.disc.poller.run("poll-n").status == "done"
    h.clock.advance(61)
    assert h.disc.silence.check() is False
    assert not h.disc.silence.status().warned


def test_a_look_up_files_wait_on_runs_before_a_missing_sessions_look_up(h: Harness) -> None:
    h.sim.configure(no_file_rooms=["room-p"])
    h.record_ours("room-p")
    h.clock.advance(MISSING_AFTER_S + 1)
    assert list(h.disc.watch_loop.step()[0].values()) == ["lookup"]
    now_ms = int(h.clock() * 1000)
    h.disc.lookups.request("room-w", now_ms - 60_000, now_ms)
    # One step at a time: the room a file waits on first, the missing session's after it.
    assert h.disc.lookup_loop.step() == "room-w"
    assert h.sim.journal("getVodInfoByRoomId")[-1]["params"]["roomId"] == "room-w"
    [session] = h.log.for_room("room-p")
    assert h.disc.lookup_loop.step() == session.session_id
    assert [c["params"]["roomId"] for c in h.sim.journal("getVodInfoByRoomId")] == [
        "room-w",
        "room-p",
    ]
    assert h.disc.lookup_loop.step() is None


def test_judgement_waits_while_the_time_poll_lags_behind_the_session(
    h: Harness, redis_client: redis.Redis
) -> None:
    h.sim.configure(no_file_rooms=["room-lag"])
    h.record_ours("room-lag", bookings=("bk-lag",))
    # The poll is working through a backlog: it has listed uploads only up to before the stop.
    lagging = int((h.clock() - 60) * 1000)
    redis_client.set(h.disc.keys.poll_watermark, lagging)
    assert judge(h) == {}
    assert room_lookups(h, "room-lag") == []
    # Caught up: the session is judged as usual.
    redis_client.set(h.disc.keys.poll_watermark, int(h.clock() * 1000))
    h.clock.advance(MISSING_AFTER_S + 1)
    [(_, verdict)] = judge(h).items()
    assert verdict == "lookup" and len(room_lookups(h, "room-lag")) == 1


def test_a_poll_that_never_catches_up_delays_judgement_no_longer_than_its_bound(
    h: Harness, redis_client: redis.Redis
) -> None:
    from worker.discovery.missing import POLL_WAIT_MAX_S

    h.sim.configure(no_file_rooms=["room-stuck"])
    h.record_ours("room-stuck", bookings=("bk-stuck",))
    redis_client.set(h.disc.keys.poll_watermark, int((h.clock() - 60) * 1000))
    assert judge(h) == {}
    h.clock.advance(POLL_WAIT_MAX_S)
    [(_, verdict)] = judge(h).items()
    assert verdict == "lookup"

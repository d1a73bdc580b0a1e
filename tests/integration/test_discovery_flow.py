"""Discovery flows on real Redis, the simulator over loopback HTTP, and a kombu consumer.

The plain functions under the tasks run in this process; the tasks they would enqueue are run
inline by ``run_queued`` (the Celery transport itself is covered by test_discovery_worker.py).
Discovery runs on an injected clock: a test that needs a lease or a deadline to pass moves the
clock instead of sleeping. The simulator and the limiter keep real time.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Queue
from redis.crc import key_slot

from schedules.recording_log import RecordingLog
from tests.support.callbacks import callback_body
from tests.support.scaled import scaled_discovery
from tests.support.waiting import wait_until
from worker.anyrtc.client import AnyRTCClient
from worker.discovery.grace import VENDOR_CLOCK_ALLOWANCE_MS
from worker.discovery.keys import file_key_id, hash_tag
from worker.discovery.record import Observation
from worker.discovery.service import Discovery
from worker.errors import BudgetExhausted

pytestmark = pytest.mark.integration


class ShiftedClock:
    """Real time plus an offset the test moves forward: discovery's "now" runs ahead of the
    simulator's by exactly what the test skipped."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_s

    def advance(self, seconds: float) -> None:
        self.offset_s += seconds


class Harness:
    """A Discovery on tuned settings plus the helpers the tests share."""

    def __init__(self, settings: Any, sim: Any, client: redis.Redis) -> None:
        self.settings = settings
        self.sim = sim
        self.redis = client
        self.queued: list[tuple[str, list[Any]]] = []
        self.clock = ShiftedClock()
        self.disc = Discovery(
            settings, lambda name, args, _c: self.queued.append((name, args)), clock=self.clock
        )
        self.vendor = AnyRTCClient.from_settings(settings)
        self.log = RecordingLog(client, settings.redis_key_prefix)
        self.customer = f"{settings.redis_key_prefix}-customer"

    def record_ours(self, room: str, seconds: float = 1.1, bookings: tuple[str, ...] = ()) -> None:
        """What the lifecycle does: start, log, stop, log."""
        self.vendor.start_record(room)
        self.log.started(room, time.time(), bookings)
        time.sleep(seconds)
        self.vendor.stop_record(room)
        self.log.stopped(room, time.time())

    def sim_files(self, room: str | None = None) -> list[dict[str, Any]]:
        return [f for f in self.sim.files() if room is None or f["room_id"] == room]

    def visible(self, count: int, *, final: bool = False) -> list[dict[str, Any]]:
        def ready() -> list[dict[str, Any]] | None:
            files = [f for f in self.sim.files() if f["visible"]]
            if final:
                files = [f for f in files if f["status"] in (2, 3)]
            return files if len(files) >= count else None

        return wait_until(ready)

    def queued_lookups(self) -> list[str]:
        """Rooms waiting in the look-up queue."""
        return list(self.redis.zrange(self.disc.keys.lookup_queue, 0, -1))

    def run_queued(self) -> list[str]:
        """Run the tasks the code enqueued, then the look-ups due, as the workers would."""
        ran = []
        while self.queued:
            name, args = self.queued.pop(0)
            ran.append(name)
            if name == "discovery.relist":
                assert self.disc.runner.relist(*args).status == "done"
            elif name == "discovery.publish":
                self.disc.fanout.republish(*args)
            else:
                raise AssertionError(f"unexpected task {name}")
        ran += [f"lookup:{room}" for room in self.disc.lookup_loop.drain()]
        return ran

    def outbox(self) -> dict[str, dict[str, Any]]:
        found = {}
        for key in self.redis.scan_iter(self.disc.keys.outbox("*")):
            if key == self.disc.keys.outbox_pending:
                continue
            record = self.redis.hgetall(key)
            found[key.rsplit(":", 1)[1]] = {**record, "body": json.loads(record["body"])}
        return found

    def consume(self, expect: int, timeout: float = 5.0) -> list[tuple[dict[str, Any], Any]]:
        """Drain the customer queue with kombu, as a customer would."""
        exchange = Exchange(self.settings.downstream_exchange, "topic", durable=True)
        queue = Queue(self.customer, exchange, routing_key="recording.*", durable=True)
        got: list[tuple[dict[str, Any], Any]] = []

        def on_message(body: dict[str, Any], message: Any) -> None:
            got.append((body, message))
            message.ack()

        with (
            Connection(self.settings.downstream_broker_url) as conn,
            conn.Consumer(queue, callbacks=[on_message], accept=["json"]),
        ):
            deadline = time.monotonic() + timeout
            while len(got) < expect and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError, socket.timeout):
                    conn.drain_events(timeout=0.2)
            if len(got) == expect:  # and nothing more arrives
                with contextlib.suppress(TimeoutError, socket.timeout):
                    conn.drain_events(timeout=0.3)
        return got


@pytest.fixture
def tuned(settings: Any) -> Any:
    return scaled_discovery(settings)


@pytest.fixture
def h(tuned: Any, sim: Any, redis_client: redis.Redis) -> Iterator[Harness]:
    sim.configure(rate_limit=5, rate_period_s=1.0, upload_delay_s=0.1, transcode_delay_s=0.2)
    harness = Harness(tuned, sim, redis_client)
    harness.disc.publisher.declare()  # the customer binds before going live
    yield harness
    harness.disc.publisher.close()
    redis_client.delete(f"{tuned.downstream_exchange}.audit")


def test_poll_reads_every_page_of_one_window(h: Harness) -> None:
    h.disc.poller.page_max = 3
    now = time.time()
    for i in range(7):
        h.sim.record(f"auto-{i}", now - 30, now - 20)
    h.visible(7)
    result = h.disc.poller.run("task-1")
    assert (result.status, result.pages, result.files) == ("done", 3, 7)
    calls = h.sim.journal("getVodListByTime")
    assert [c["params"]["pageNum"] for c in calls] == [1, 2, 3]
    assert {(c["params"]["begTime"], c["params"]["endTime"]) for c in calls} == {
        (calls[0]["params"]["begTime"], calls[0]["params"]["endTime"])
    }
    assert all(c["params"]["pageMax"] == 3 for c in calls)
    keys = h.disc.keys
    assert h.redis.get(keys.poll_watermark) == str(calls[0]["params"]["endTime"])
    assert not h.redis.exists(keys.poll_cursor)
    assert all(h.disc.registry.get(file_key_id(f["download_url"])) for f in h.sim_files())


def test_poll_resumes_at_the_page_where_the_budget_stopped_it(h: Harness) -> None:
    h.sim.configure(rate_limit=2)
    h.disc.limiter.limit = 2
    h.disc.poller.page_max = 2
    now = time.time()
    for i in range(7):
        h.sim.record(f"auto-{i}", now - 30, now - 20)
    h.visible(7)
    first = h.disc.poller.run("task-A")
    assert first.status == "retry" and first.pages == 2 and first.retry_after
    cursor = h.disc.poller.cursor()
    assert cursor is not None and cursor.page == 3
    # A poll sent by beat meanwhile leaves the work to the queued retry.
    assert h.disc.poller.run("task-B").reason == "a retry of the poll is already queued"
    # Under load a slot can free a little after the announced wait: a denied retry is told
    # to wait again and sends nothing, so follow it a bounded number of times.
    second, pages = first, 0
    for _ in range(5):
        time.sleep(second.retry_after or 0.1)
        second = h.disc.poller.run("task-A")
        pages += second.pages
        if second.status != "retry":
            break
    assert (second.status, pages) == ("done", 2)
    calls = h.sim.journal("getVodListByTime")
    assert [c["params"]["pageNum"] for c in calls] == [1, 2, 3, 4]
    assert len({(c["params"]["begTime"], c["params"]["endTime"]) for c in calls}) == 1
    assert [c["code"] for c in calls] == [200] * 4
    assert not h.redis.exists(h.disc.keys.poll_retry)


def test_one_poller_at_a_time(h: Harness) -> None:
    lock = h.redis.lock(h.disc.keys.poll_lock, timeout=5)
    assert lock.acquire(blocking=False)
    try:
        assert h.disc.poller.run("t").reason == "another poll is running"
    finally:
        lock.release()
    assert h.sim.journal("getVodListByTime") == []


def test_late_upload_is_caught_by_the_overlap(h: Harness) -> None:
    h.sim.configure(listing_lag_s=1.0)
    now = time.time()
    h.sim.record("late-room", now - 10, now - 0.1)
    upload_ms = h.sim_files()[0]["upload_timestamp"]
    first = h.disc.poller.run("t1")
    assert first.files == 0  # uploaded, but the list does not show it yet
    h.visible(1)
    second = h.disc.poller.run("t2")
    assert second.files == 1
    calls = h.sim.journal("getVodListByTime")
    # The second window starts before the first one ended: the overlap is what caught it.
    assert calls[1]["params"]["begTime"] <= upload_ms <= calls[0]["params"]["endTime"]


def test_file_followed_from_0_to_2_is_emitted_once(h: Harness) -> None:
    h.sim.configure(transcode_delay_s=1.5)
    h.record_ours("room-f", bookings=("booking-f",))
    h.visible(1)
    assert h.disc.poller.run("t1").files == 1
    fid = file_key_id(h.sim_files()[0]["download_url"])
    assert h.disc.registry.get(fid)["status"] in ("0", "1")
    assert h.redis.zscore(h.disc.keys.follow, fid) is not None
    assert h.outbox() == {}
    h.visible(1, final=True)
    assert h.disc.poller.run("t2").files == 1
    h.disc.poller.run("t3")
    got = h.consume(expect=1)
    assert len(got) == 1
    body, message = got[0]
    assert body["status"] == 2 and body["room_id"] == "room-f"
    assert body["booking_id"] == "booking-f" and body["source"] == "poll"
    assert message.delivery_info["routing_key"] == "recording.ready"
    assert message.properties["message_id"] == fid == body["message_id"]
    assert h.redis.zscore(h.disc.keys.follow, fid) is None


def test_failed_transcode_is_published_as_recording_failed(h: Harness) -> None:
    h.sim.configure(transcode_fail_rate=1.0)
    h.record_ours("room-x")
    h.visible(1, final=True)
    h.disc.poller.run("t1")
    ((body, message),) = h.consume(expect=1)
    assert body["status"] == 3 and message.delivery_info["routing_key"] == "recording.failed"


@pytest.mark.parametrize("callback_first", [True, False])
def test_same_file_by_callback_and_by_poll_gives_one_message(
    h: Harness, callback_first: bool
) -> None:
    h.record_ours("room-c", bookings=("bk",))
    file = h.visible(1, final=True)[0]
    if callback_first:
        assert h.disc.callback(callback_body(file)) == "delivered"
        h.disc.poller.run("t1")
    else:
        h.disc.poller.run("t1")
        assert h.disc.callback(callback_body(file)) == "duplicate"
    got = h.consume(expect=1)
    assert len(got) == 1
    body = got[0][0]
    assert body["source"] == ("callback" if callback_first else "poll")
    assert body["room_id"] == "room-c" and body["booking_id"] == "bk"
    stats = h.disc.ops.stats()
    assert stats.get("delivered_callback", 0) + stats.get("delivered_poll", 0) == 1


def _grace(h: Harness) -> float:
    """Give the settler the default grace, one poll interval; returns it in seconds."""
    h.disc.settler.callback_grace_ms = int(h.settings.poll_every_s * 1000)
    return h.settings.poll_every_s


def test_a_poll_found_file_whose_callback_comes_within_the_grace_carries_its_fields(
    h: Harness,
) -> None:
    grace = _grace(h)
    h.sim.configure(per_user_files=1)
    h.record_ours("room-g", bookings=("bk-g",))
    files = h.visible(2, final=True)
    h.disc.poller.run("t1")
    assert h.outbox() == {}  # both wait for their callbacks
    assert h.redis.zcard(h.disc.keys.awaiting) == 2
    h.clock.advance(grace * 0.9)
    assert h.disc.sweeper.run().delivered == []
    for file in files:
        assert h.disc.callback(callback_body(file)) == "delivered"
    got = {body["download_url"]: body for body, _ in h.consume(expect=2)}
    assert len(got) == 2
    for file in files:
        body = got[file["download_url"]]
        assert (body["type"], body["file_name"], body["media_type"]) == (
            file["type"],
            file["file_name"],
            file["media_type"],
        )
        assert body["user_id"] == (file["user_id"] or None)
        assert body["file_id"] == file["fileid"] and body["file_id_source"] == "url"
        assert body["room_id"] == "room-g" and body["booking_id"] == "bk-g"
        assert body["source"] == "callback"
    assert sorted(b["type"] for b in got.values()) == ["1", "2"]
    assert h.redis.zcard(h.disc.keys.awaiting) == 0
    h.clock.advance(grace)
    assert h.disc.sweeper.run().delivered == []  # nothing left to deliver


def test_a_poll_found_file_without_callback_is_published_after_the_grace(h: Harness) -> None:
    grace = _grace(h)
    h.record_ours("room-n", bookings=("bk-n",))
    (file,) = h.visible(1, final=True)
    h.disc.poller.run("t1")
    assert h.outbox() == {}
    h.clock.advance(grace * 0.9)
    assert h.disc.sweeper.run().delivered == []  # still inside the grace
    h.clock.advance(grace * 0.1)
    assert h.disc.sweeper.run().delivered == [file_key_id(file["download_url"])]
    ((body, message),) = h.consume(expect=1)
    assert body["source"] == "poll" and message.delivery_info["routing_key"] == "recording.ready"
    assert body["room_id"] == "room-n" and body["booking_id"] == "bk-n"  # what is known
    assert (body["type"], body["file_name"], body["media_type"], body["user_id"]) == (None,) * 4
    assert body["file_id"] == file["fileid"] and body["file_id_source"] == "url"
    assert body["status"] == 2
    # The callback that comes after all is a duplicate: one message per file.
    assert h.disc.callback(callback_body(file)) == "duplicate"
    assert h.consume(expect=0, timeout=0.5) == []


def test_a_wait_that_is_over_is_delivered_by_the_resume_loop_between_polls(h: Harness) -> None:
    # The sweep runs only before a poll; every discovery worker's resume loop (once a second)
    # ends waits at their deadline, so the grace costs one grace, not a grace and a poll.
    grace = _grace(h)
    h.record_ours("room-r", bookings=("bk-r",))
    (file,) = h.visible(1, final=True)
    h.disc.poller.run("t1")
    h.clock.advance(grace * 0.9)
    h.disc.resume_loop.step()
    assert h.outbox() == {}  # still inside the grace
    h.clock.advance(grace * 0.1)
    h.disc.resume_loop.step()
    ((body, _),) = h.consume(expect=1)
    assert body["message_id"] == file_key_id(file["download_url"]) and body["source"] == "poll"


def _watermark_before(h: Harness, seconds_ago: float) -> None:
    """As a poll that ran ``seconds_ago`` left it: the next poll lists everything since."""
    h.redis.set(h.disc.keys.poll_watermark, int((time.time() - seconds_ago) * 1000))


def test_a_file_uploaded_long_before_the_poll_found_it_goes_out_without_waiting(
    h: Harness,
) -> None:
    # Discovery was down while "old-room"'s file was uploaded, transcoded and called back (the
    # callback lost): uploaded longer ago than EXPECTED_TRANSCODE_S, the vendor's clock
    # allowance and the grace, its callback is overdue. "new-room"'s file is fresh: it waits.
    grace = _grace(h)
    now = time.time()
    old_age = h.settings.expected_transcode_s + VENDOR_CLOCK_ALLOWANCE_MS / 1000 + grace + 5
    h.sim.record("old-room", now - old_age - 60, now - old_age)
    h.log.started("old-room", now - old_age - 60, ["bk-old"])
    h.log.stopped("old-room", now - old_age)
    h.record_ours("new-room", bookings=("bk-new",))
    old, new = (h.sim_files(room)[0] for room in ("old-room", "new-room"))
    h.visible(2, final=True)
    _watermark_before(h, old_age + 10)
    h.disc.poller.run("t1")
    ((body, _),) = h.consume(expect=1)  # at once, with no sweep and no clock moved
    assert body["download_url"] == old["download_url"] and body["source"] == "poll"
    assert body["room_id"] == "old-room" and body["booking_id"] == "bk-old"
    new_fid = file_key_id(new["download_url"])
    assert h.redis.zrange(h.disc.keys.awaiting, 0, -1) == [new_fid]
    # The fresh one waits the whole grace from when the poll saw it.
    seen_ms = int(h.disc.registry.get(new_fid)["final_seen_ms"])
    assert h.redis.zscore(h.disc.keys.awaiting, new_fid) == seen_ms + grace * 1000
    h.clock.advance(grace)
    assert h.disc.sweeper.run().delivered == [new_fid]


def test_a_listed_upload_time_in_the_future_waits_the_whole_grace(h: Harness) -> None:
    # The vendor's clock runs an hour ahead of ours: the stamp must not shorten the wait.
    grace = _grace(h)
    h.record_ours("ahead", bookings=("bk-a",))
    (file,) = h.visible(1, final=True)
    seen_ms = int(h.clock() * 1000)
    listed = Observation(
        identity=file["download_url"],
        download_url=file["download_url"],
        source="poll",
        seen_ms=seen_ms,
        status=2,
        start_time=int(file["start_time"]),
        end_time=int(file["end_time"]),
        upload_ms=seen_ms + 3_600_000,
    )
    assert h.disc.settler.sighted(listed) == "awaiting-callback"
    fid = file_key_id(file["download_url"])
    assert h.redis.zscore(h.disc.keys.awaiting, fid) == seen_ms + grace * 1000
    h.clock.advance(grace * 0.9)
    assert h.disc.sweeper.run().delivered == []
    h.clock.advance(grace * 0.1)
    assert h.disc.sweeper.run().delivered == [fid]


def test_a_head_page_of_new_uploads_only_is_not_listed_again_by_the_fresh_stage(
    h: Harness,
) -> None:
    h.sim.configure(rate_limit=50)
    h.disc.limiter.limit = 50
    h.disc.poller.page_max = 3
    now = time.time()
    for i in range(7):
        h.sim.record(f"auto-{i}", now - 30, now - 20)
    h.visible(7, final=True)
    _watermark_before(h, 40)  # nothing in the overlap before it
    result = h.disc.poller.run("t1")
    assert (result.pages, result.stages, result.files) == (3, ["head", "fresh", "fresh"], 7)
    pages = [c["params"]["pageNum"] for c in h.sim.journal("getVodListByTime")]
    assert pages == [1, 2, 3]
    # With a file in the overlap, the head page is not the fresh region's page 1: all of it.
    h.sim.record("auto-early", now - 70, now - 50)
    h.sim.record("auto-late", now - 10, now - 5)
    h.visible(9, final=True)
    _watermark_before(h, 40)
    second = h.disc.poller.run("t2")
    assert second.stages[:4] == ["head", "fresh", "fresh", "fresh"]
    fresh_pages = [c["params"]["pageNum"] for c in h.sim.journal("getVodListByTime")[4:7]]
    assert fresh_pages == [1, 2, 3]


def test_rooms_that_correlation_cannot_tell_apart_are_looked_up(h: Harness) -> None:
    # Two rooms recorded over the same seconds: the time list cannot say which file is whose.
    for room in ("twin-a", "twin-b"):
        h.vendor.start_record(room)
        h.log.started(room, time.time())
    time.sleep(1.1)
    for room in ("twin-a", "twin-b"):
        h.vendor.stop_record(room)
        h.log.stopped(room, time.time())
    files = h.visible(2, final=True)
    h.disc.poller.run("t1")
    assert sorted(h.queued_lookups()) == ["twin-a", "twin-b"] and h.queued == []
    assert h.outbox() == {}
    h.run_queued()
    messages = {m["body"]["download_url"]: m["body"] for m in h.outbox().values()}
    for file in files:
        body = messages[file["download_url"]]
        assert body["room_id"] == file["room_id"]
        assert body["file_id"] == file["fileid"] and body["source"] == "room"
        assert body["file_id_source"] == "vendor"
    assert len(h.sim.journal("getVodInfoByRoomId")) == 2


def test_a_room_never_started_here_waits_for_its_callback_then_goes_without_room(
    h: Harness,
) -> None:
    _grace(h)
    now = time.time()
    h.sim.record("auto-1", now - 20, now - 10)
    h.sim.record("auto-2", now - 40, now - 30)
    first, second = h.visible(2, final=True)
    h.disc.poller.run("t1")
    assert h.outbox() == {}
    assert h.disc.sweeper.run().delivered == []  # still inside the grace
    assert h.disc.callback(callback_body(second)) == "delivered"  # the callback names the room
    h.clock.advance(h.settings.poll_every_s * 0.9)
    assert h.disc.sweeper.run().delivered == []  # the grace is one poll interval
    h.clock.advance(h.settings.poll_every_s * 0.1)
    assert h.disc.sweeper.run().delivered == [file_key_id(first["download_url"])]
    bodies = {m["body"]["download_url"]: m["body"] for m in h.outbox().values()}
    assert bodies[first["download_url"]]["room_id"] is None
    assert bodies[second["download_url"]]["room_id"] == second["room_id"]
    assert h.sim.journal("getVodInfoByRoomId") == []  # no room to look up


def test_message_claimed_but_never_published_is_published_by_the_sweep(h: Harness) -> None:
    body = {"schema": "recording.v1", "message_id": "f" * 32, "status": 2}
    # A worker claimed the file and died before publishing.
    assert h.disc.outbox.claim("f" * 32, json.dumps(body), "recording.ready", "poll")
    lease_s = h.settings.discovery_lease_s
    assert h.disc.outbox.lease_ms == lease_s * 1000
    assert h.disc.sweeper.run().republished == []
    h.clock.advance(lease_s - 0.5)
    assert h.disc.sweeper.run().republished == []  # the claimer may still be publishing
    h.clock.advance(0.5)
    assert h.disc.sweeper.run().republished == ["f" * 32]
    assert h.run_queued() == ["discovery.publish"]
    ((got, message),) = h.consume(expect=1)
    assert got == body and message.properties["message_id"] == "f" * 32
    assert h.disc.outbox.get("f" * 32)["state"] == "sent"
    h.clock.advance(lease_s)
    assert h.disc.sweeper.run().republished == []


def test_overdue_files_get_one_low_priority_query_each(h: Harness) -> None:
    h.disc.sweeper.check_every_ms = 60_000
    h.sim.configure(transcode_delay_s=30)
    h.record_ours("slow-room")
    now = time.time()
    h.sim.record("slow-auto", now - 20, now - 10)
    h.visible(2)
    h.disc.poller.run("t1")
    h.clock.advance(h.settings.expected_transcode_s)  # both are overdue now
    swept = h.disc.sweeper.run()
    assert swept.lookups == ["slow-room"] and swept.relisted == 1
    assert sorted(h.run_queued()) == ["discovery.relist", "lookup:slow-room"]
    assert len(h.sim.journal("getVodInfoByRoomId")) == 1
    assert h.disc.sweeper.run().lookups == []  # next check only after check_every


def test_vendor_299_closes_the_budget_for_a_window(h: Harness) -> None:
    h.sim.configure(inject_next=[{"endpoint": "getVodListByTime", "code": 299}])
    result = h.disc.poller.run("t1")
    assert result.status == "retry" and result.retry_after == pytest.approx(1.02)
    with pytest.raises(BudgetExhausted) as denied:
        h.disc.poll_vendor.list_by_time(0, 1000)
    assert 0.9 < denied.value.retry_after <= 1.02
    assert h.disc.poller.cursor() is not None  # resumes the same window later


def test_permanent_vendor_error_is_recorded_for_the_operator(h: Harness) -> None:
    h.sim.configure(inject_next=[{"endpoint": "getVodListByTime", "code": 281}])
    result = h.disc.poller.run("t1")
    assert result.status == "failed"
    (entry,) = h.disc.ops.entries("errors")
    assert entry["kind"] == "poll" and entry["code"] == "281"
    token = h.settings.anyrtc_vod_token.get_secret_value()
    assert token not in json.dumps(entry)


def test_a_lost_binding_table_is_healed_by_the_sweep(h: Harness) -> None:
    table = f"_kombu.binding.{h.settings.downstream_exchange}"
    h.redis.delete(table)  # e.g. Redis restarted without persistence
    h.disc.sweeper.run()
    members = h.redis.smembers(table)
    assert any(m.endswith(h.customer) for m in members)
    assert any(m.endswith(f"{h.settings.downstream_exchange}.audit") for m in members)


def test_a_quiet_window_costs_one_page_per_poll(h: Harness) -> None:
    _grace(h)  # a file of a room never started here waits for its callback
    h.sim.configure(rate_limit=50)
    h.disc.limiter.limit = 50
    h.disc.poller.page_max = 3
    now = time.time()
    for i in range(7):
        h.sim.record(f"auto-{i}", now - 30, now - 20)
    h.visible(7, final=True)
    assert h.disc.poller.run("t1").pages == 3
    second = h.disc.poller.run("t2")
    assert (second.pages, second.stages) == (1, ["head"])  # cnt == files already seen
    watermark = h.redis.get(h.disc.keys.poll_watermark)
    h.redis.set(h.disc.keys.transcode_est, 500)  # files here take 0.5 s to transcode
    h.sim.record("auto-new", now - 5, now - 1)
    h.visible(8)
    third = h.disc.poller.run("t3")
    # New files exist, but nothing uploaded since the watermark can be final yet: list later.
    assert third.stages == ["head", "deferred"]
    assert h.redis.get(h.disc.keys.poll_watermark) == watermark
    h.clock.advance(0.5)
    fourth = h.disc.poller.run("t4")
    assert fourth.stages[:2] == ["head", "fresh"]
    assert h.redis.get(h.disc.keys.poll_watermark) != watermark
    assert file_key_id(h.sim_files("auto-new")[0]["download_url"]) in set(
        h.redis.zrange(h.disc.keys.awaiting, 0, -1)
    )


def test_transcoding_files_beyond_page_one_are_relisted_in_follow_windows(h: Harness) -> None:
    h.sim.configure(rate_limit=50, transcode_delay_s=1.5)
    h.disc.limiter.limit = 50
    h.disc.poller.page_max = 2
    now = time.time()
    for i in range(5):
        h.sim.record(f"auto-{i}", now - 10, now + 0.1 * i)  # uploads spread over 0.4 s
    h.visible(5)
    first = h.disc.poller.run("t1")
    assert first.stages == ["head", "rest", "rest"]
    followed = h.redis.zrange(h.disc.keys.follow, 0, -1)
    assert len(followed) == 5
    h.visible(5, final=True)
    h.clock.advance(h.settings.poll_every_s)  # their re-list is due
    second = h.disc.poller.run("t2")
    assert second.stages[0] == "head" and second.stages.count("follow") >= 1
    assert h.redis.zcard(h.disc.keys.follow) == 0  # every file seen final
    calls = h.sim.journal("getVodListByTime")[len(first.stages) :]
    for call in calls[1:]:
        assert call["params"]["endTime"] - call["params"]["begTime"] < 30_000  # narrow windows


def test_a_file_no_candidate_room_lists_is_delivered_without_room(h: Harness) -> None:
    # Our recording spans the file but did not make it: an auto-recorded room inside it.
    h.vendor.start_record("ours")
    h.log.started("ours", time.time() - 20)
    h.vendor.stop_record("ours")
    h.log.stopped("ours", time.time() + 20)
    h.sim.record("not-ours", time.time() - 10, time.time() - 5)
    h.visible(2, final=True)
    h.disc.poller.run("t1")
    assert h.queued_lookups() == ["ours"] and h.queued == []
    h.run_queued()
    bodies = {m["body"]["room_id"] for m in h.outbox().values()}
    assert bodies == {None, "ours"}
    assert h.redis.zcard(h.disc.keys.awaiting) == 0


def test_a_hand_made_bad_callback_task_is_recorded_not_raised(h: Harness) -> None:
    assert h.disc.callback({"groupId": "", "downloadUrl": "nope"}) == "invalid"
    (entry,) = h.disc.ops.entries("errors")
    assert entry["kind"] == "callback-task" and "downloadUrl" in entry["message"]


def test_a_lookup_denied_by_the_budget_asks_to_retry_later(h: Harness) -> None:
    h.disc.lookups.request("room-z", 0, 1000)
    h.disc.limiter.close(h.settings.anyrtc_app_id)
    result = h.disc.runner.room("room-z")
    assert result.status == "retry" and 0 < (result.retry_after or 0) <= 1.02
    assert h.disc.lookups.window("room-z") is not None  # still asked for
    assert h.sim.journal("getVodInfoByRoomId") == []


def test_every_key_a_discovery_flow_writes_carries_the_prefix_hash_tag(h: Harness) -> None:
    _grace(h)
    now = time.time()
    h.sim.record("auto-tag", now - 20, now - 10)
    (file,) = h.visible(1, final=True)
    assert h.disc.poller.run("t1").status == "done"
    assert h.disc.callback(callback_body(file)) == "delivered"
    assert h.disc.callback({"groupId": "", "downloadUrl": "nope"}) == "invalid"
    h.disc.lookups.wait_for("auto-tag", file_key_id(file["download_url"]))
    assert h.disc.lookups.request("auto-tag", 0, int(now * 1000))
    assert h.disc.runner.room("auto-tag").status == "done"
    h.disc.sweeper.run()

    prefix = h.settings.redis_key_prefix
    tag = hash_tag(prefix)
    # kombu's own names (the exchange's binding table, the queues) are not discovery's.
    kombu = {
        f"_kombu.binding.{h.settings.downstream_exchange}",
        f"{h.settings.downstream_exchange}.audit",
        h.customer,
    }
    found = set(h.redis.scan_iter(match=f"*{prefix}*", count=1000)) - kombu
    # The metrics it records (worker/metrics/keys.py) share the deployment's hash tag.
    assert {k for k in found if not k.startswith((f"{tag}:disc:", f"{tag}:metrics:"))} == set()
    assert any(k.startswith(f"{tag}:metrics:") for k in found)
    kinds = {k.removeprefix(f"{tag}:disc:").split(":")[0] for k in found if ":disc:" in k}
    assert {"budget", "poll", "file", "seen", "outbox", "errors", "stats"} <= kinds
    assert len({key_slot(k.encode()) for k in found}) == 1


def test_a_lookup_taken_by_a_worker_that_died_comes_back_after_its_lease(h: Harness) -> None:
    h.disc.lookups.request("room-dead", 0, 1000)
    # A worker's loop took it and died before the call: no task exists that could be lost.
    assert h.disc.lookups.due(h.disc.lookup_loop.lease_ms) == ["room-dead"]
    assert h.disc.lookup_loop.drain() == []  # leased: no other loop takes it meanwhile
    h.clock.advance(h.disc.lookup_loop.lease_ms / 1000 + 0.1)
    assert h.disc.lookup_loop.drain() == ["room-dead"]
    assert len(h.sim.journal("getVodInfoByRoomId")) == 1
    assert h.queued_lookups() == [] and h.disc.lookups.window("room-dead") is None


def test_budget_waits_cost_no_back_off_and_a_request_widened_meanwhile_is_served(
    h: Harness,
) -> None:
    h.disc.lookups.request("room-w", 0, 1000)
    for _ in range(12):  # a dozen budget waits: none of them counts as an error
        h.disc.limiter.close(h.settings.anyrtc_app_id)
        assert h.disc.lookup_loop.drain() == ["room-w"]
        h.clock.advance(1.05)
    assert "errors" not in h.redis.hgetall(h.disc.keys.lookup("room-w"))
    assert not h.disc.lookups.request("room-w", 0, 5000)  # widened while it waits: version 2
    time.sleep(1.05)  # the limiter keeps real time
    h.clock.advance(1.05)
    assert h.disc.lookup_loop.drain() == ["room-w"]
    assert len(h.sim.journal("getVodInfoByRoomId")) == 1  # one call, over the widened window
    assert h.queued_lookups() == [] and h.disc.lookups.window("room-w") is None


def test_a_vendor_error_backs_off_and_a_later_request_is_never_merged_into_a_dead_one(
    h: Harness,
) -> None:
    h.sim.configure(inject_next=[{"endpoint": "getVodInfoByRoomId", "fault": "error"}])
    h.disc.lookups.request("room-e", 0, 1000)
    assert h.disc.lookup_loop.drain() == ["room-e"]  # 501: backed off, still queued
    assert h.queued_lookups() == ["room-e"]
    h.clock.advance(h.settings.retry_backoff_max_s + 0.1)
    time.sleep(1.05)
    assert h.disc.lookup_loop.drain() == ["room-e"]
    assert [e["verdict"] for e in h.sim.journal("getVodInfoByRoomId")][-1] == "ok"
    assert h.queued_lookups() == []
    assert h.disc.lookups.request("room-e", 0, 1000)  # a fresh request, queued again
    assert h.queued_lookups() == ["room-e"]

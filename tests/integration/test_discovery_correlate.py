"""Correlation of time-listed files with the recording log (real Redis)."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from schedules.recording_log import RecordingLog
from worker.discovery.correlate import Correlator

pytestmark = pytest.mark.integration

T0 = 1_700_000_000


@pytest.fixture
def log(redis_client: redis.Redis, settings: Any) -> RecordingLog:
    return RecordingLog(redis_client, settings.redis_key_prefix)


def file(start: float, end: float, **extra: str) -> dict[str, str]:
    return {"start_time": str(int(start)), "end_time": str(int(end)), **extra}


def session(log: RecordingLog, room: str, start: float, stop: float, *bookings: str) -> None:
    log.started(room, start, bookings)
    log.stopped(room, stop)


def test_one_matching_recording_names_room_and_bookings(log: RecordingLog) -> None:
    session(log, "a", T0 + 0.4, T0 + 60.7, "b-1", "b-2")
    session(log, "b", T0 + 2.5, T0 + 62.5)  # 2.5 s later: another recording
    found = Correlator(log).correlate(file(T0, T0 + 60))
    assert (found.kind, found.room_id, found.booking_ids) == ("unique", "a", ("b-1", "b-2"))


@pytest.mark.parametrize("phase", [0.05, 0.5, 0.95])
def test_the_previous_wave_never_matches_a_truncated_second(
    log: RecordingLog, phase: float
) -> None:
    # The vendor lists whole seconds (truncated). Meetings 2 s apart in start and stop stay
    # apart whatever the sub-second phase of their real start.
    session(log, "earlier", T0 + phase - 2, T0 + 60 + phase - 2)
    session(log, "this", T0 + phase + 0.02, T0 + 60 + phase + 0.02)  # confirmed 20 ms later
    session(log, "later", T0 + phase + 2, T0 + 60 + phase + 2)
    found = Correlator(log).correlate(file(T0 + phase, T0 + 60 + phase))
    assert (found.kind, found.room_id) == ("unique", "this")


def test_recordings_over_the_same_seconds_are_ambiguous(log: RecordingLog) -> None:
    session(log, "a", T0 + 0.2, T0 + 60.2)
    session(log, "b", T0 + 0.6, T0 + 60.6)
    found = Correlator(log).correlate(file(T0, T0 + 60))
    assert (found.kind, found.candidates) == ("ambiguous", ("a", "b"))


def test_a_file_inside_a_recording_but_not_matching_it_is_looked_up(log: RecordingLog) -> None:
    session(log, "a", T0, T0 + 600)
    found = Correlator(log).correlate(file(T0 + 100, T0 + 200))  # a per-user stream, say
    assert (found.kind, found.candidates) == ("ambiguous", ("a",))


def test_a_file_no_logged_recording_could_have_made_is_unknown(log: RecordingLog) -> None:
    session(log, "a", T0, T0 + 60)
    assert Correlator(log).correlate(file(T0 - 50, T0 - 5)).kind == "unknown"
    assert Correlator(log).correlate({"download_url": "x"}).kind == "unknown"


def test_a_named_room_takes_bookings_from_its_matching_session(log: RecordingLog) -> None:
    session(log, "a", T0, T0 + 60, "early")
    session(log, "a", T0 + 1000, T0 + 1060, "late")
    found = Correlator(log).correlate(file(T0 + 1000, T0 + 1060, room_id="a"))
    assert (found.kind, found.room_id, found.booking_ids) == ("room", "a", ("late",))
    assert Correlator(log).correlate(file(T0 + 5000, T0 + 5060, room_id="z")).booking_ids == ()


class CountingLog(RecordingLog):
    """Counts the session hashes correlation reads."""

    reads = 0

    def _get_many(self, session_ids: list[str]) -> list[Any]:
        self.reads += len(session_ids)
        return super()._get_many(session_ids)


def test_a_unique_file_reads_only_the_sessions_that_started_near_it(
    redis_client: redis.Redis, settings: Any
) -> None:
    # A busy day: 300 recordings that all overlap the file. Settling a file used to read every
    # one of them (the whole MAX_SESSION_S), which bounded the poll's throughput by Redis.
    log = CountingLog(redis_client, settings.redis_key_prefix)
    for n in range(300):
        session(log, f"r{n}", T0 - 2 * n, T0 + 600 + 0.01 * n)
    found = Correlator(log).correlate(file(T0 - 200, T0 + 601))
    assert (found.kind, found.room_id) == ("unique", "r100")
    assert log.reads <= 3, log.reads


def test_a_session_the_vendor_started_late_in_its_span_is_not_missed_by_the_narrow_read(
    log: RecordingLog,
) -> None:
    # Room "lost": its first start attempt went out 11 s before the reply that confirmed it (the
    # first reply was lost), and the vendor started it at the retry. Room "near" started in the
    # same second. The file could be either: a room look-up decides, not the narrow read alone.
    log.started("lost", T0 + 0.3, ("b-lost",), sent_at=T0 - 11)
    log.stopped("lost", T0 + 60.3)
    session(log, "near", T0 + 0.6, T0 + 60.6, "b-near")
    found = Correlator(log).correlate(file(T0, T0 + 60))
    assert (found.kind, found.candidates) == ("ambiguous", ("lost", "near"))


def test_a_file_of_a_lost_reply_session_ties_to_its_room_and_booking(log: RecordingLog) -> None:
    # The first start attempt went out at T0 - 11 and its reply was lost; the vendor started
    # the room then, and the retry's reply confirmed it 11 s later. The file (listed from T0 - 11)
    # still ties to the session: correlation uses the span from the first send to the reply.
    log.started("lost", T0, ("b-lost",), sent_at=T0 - 11.2)
    log.stopped("lost", T0 + 49.3)
    found = Correlator(log).correlate(file(T0 - 11, T0 + 49))
    assert (found.kind, found.room_id, found.booking_ids) == ("unique", "lost", ("b-lost",))


def test_stopped_between_lists_confirmed_stops_only_in_stop_order(log: RecordingLog) -> None:
    session(log, "a", T0, T0 + 60)
    log.started("b", T0 + 1, ["bk"], uncertain=True)
    log.stopped("b", T0 + 50)
    log.started("c", T0 + 2)
    log.stopped("c", T0 + 40, confirmed=False)  # a stop that failed: nobody can judge it
    log.started("d", T0 + 3)  # still recording
    found = log.stopped_between(T0, T0 + 100)
    assert [(s.room_id, s.uncertain) for s in found] == [("b", True), ("a", False)]
    assert [s.room_id for s in log.stopped_between(T0 + 50, T0 + 100)] == ["a"]
    assert [s.room_id for s in log.stopped_between(T0, T0 + 100, limit=1)] == ["b"]

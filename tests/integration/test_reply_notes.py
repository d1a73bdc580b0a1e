"""Vendor replies noted by one writer thread per process (schedules/notes.py), against Redis:
written in order and in batches, waited for by ``flush``, retried while Redis refuses and given
up with a warning after ``retry_s``."""

from __future__ import annotations

import logging
import threading

import pytest
import redis

from schedules.notes import ReplyNotes
from tests.support.own_redis import OwnRedis
from tests.support.run import RUN_ID

pytestmark = pytest.mark.integration


def test_notes_are_written_in_order_without_the_caller_waiting(redis_client: redis.Redis) -> None:
    notes = ReplyNotes(redis_client)
    key = f"{RUN_ID}:room:r-notes"
    for n in range(200):
        notes.note(key, "reply", f'["op:r-notes:{n}", "ok", "", ""]')
    notes.note(f"{RUN_ID}:room:r-other", "reply", '["op:r-other:1", "fail", "x", "y"]')
    assert notes.flush(5)
    assert redis_client.hget(key, "reply") == '["op:r-notes:199", "ok", "", ""]'
    assert redis_client.hget(f"{RUN_ID}:room:r-other", "reply") == (
        '["op:r-other:1", "fail", "x", "y"]'
    )


def test_notes_written_from_many_threads_all_land(redis_client: redis.Redis) -> None:
    notes = ReplyNotes(redis_client)

    def write(number: int) -> None:
        for n in range(50):
            notes.note(f"{RUN_ID}:room:t{number}-{n}", "reply", str(n))

    threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert notes.flush(5)
    assert len(redis_client.keys(f"{RUN_ID}:room:t*")) == 400


def test_a_note_waits_for_redis_to_come_back_and_one_given_up_is_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    own = OwnRedis().start()
    client = redis.Redis.from_url(own.url, decode_responses=True)
    try:
        own.stop()
        patient = ReplyNotes(client, retry_s=30)
        patient.note("room:r-back", "reply", "kept")
        assert not patient.flush(0.3)  # Redis is down: still trying
        own.start()
        assert patient.flush(10)
        assert client.hget("room:r-back", "reply") == "kept"

        own.stop()
        hasty = ReplyNotes(client, retry_s=0.2)
        with caplog.at_level(logging.WARNING, logger="schedules.notes"):
            hasty.note("room:r-lost", "reply", "lost")
            assert hasty.flush(10)
        assert "1 vendor reply note(s) not written" in caplog.text
    finally:
        client.close()
        own.close()

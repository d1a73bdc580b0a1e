"""A background loop's step: a lost Redis is logged once when lost and once when back."""

from __future__ import annotations

import logging
import threading

import pytest
import redis

from worker.threads import DaemonLoop


class Loop(DaemonLoop):
    loop_name = "test loop"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = None

    def run(self) -> None:  # pragma: no cover
        """Never started: the tests drive :meth:`attempt` themselves."""


def test_a_lost_redis_is_logged_once_and_its_return_once(caplog: pytest.LogCaptureFixture) -> None:
    loop = Loop()

    def lost() -> None:
        raise redis.ConnectionError("refused")

    caplog.set_level(logging.WARNING)
    assert loop.attempt(lambda: 7) == (True, 7)
    assert [loop.attempt(lost) for _ in range(3)] == [(False, None)] * 3
    assert loop.attempt(lambda: 8) == (True, 8)
    assert loop.attempt(lambda: 9) == (True, 9)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["test loop lost Redis (ConnectionError); retrying", "test loop: Redis is back"]


def test_any_other_failure_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> None:
        raise KeyError("x")

    assert Loop().attempt(broken) == (False, None)
    assert "test loop step failed; trying again" in caplog.text

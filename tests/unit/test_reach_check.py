"""Whether Redis answers just before a herd's second (schedules/reach.py): one PING shared by
every batch that asks within ``fresh_s``, and no answer in time counts as unreachable."""

from __future__ import annotations

import threading

from schedules.reach import ReachCheck


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_answer_serves_every_ask_while_fresh_then_redis_is_asked_again() -> None:
    clock = Clock()
    pings: list[int] = []
    check = ReachCheck(fresh_s=0.25, wait_s=5, monotonic=clock)
    assert check.reachable(lambda: pings.append(1))
    assert check.reachable(lambda: pings.append(1))
    assert len(pings) == 1
    clock.now += 0.3
    assert check.reachable(lambda: pings.append(1))
    assert len(pings) == 2


def test_a_ping_that_raises_means_unreachable_and_is_shared_too() -> None:
    clock = Clock()
    calls: list[int] = []

    def refused() -> None:
        calls.append(1)
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    check = ReachCheck(fresh_s=0.25, wait_s=5, monotonic=clock)
    assert not check.reachable(refused)
    assert not check.reachable(refused)
    assert len(calls) == 1
    clock.now += 0.3
    assert check.reachable(lambda: None)  # back


def test_a_ping_without_an_answer_in_time_means_unreachable_and_is_not_asked_twice() -> None:
    gate = threading.Event()
    calls: list[int] = []

    def hanging() -> None:  # a Redis that takes the connection and never answers
        calls.append(1)
        gate.wait(10)

    check = ReachCheck(fresh_s=0.25, wait_s=0.05)
    assert not check.reachable(hanging)
    assert not check.reachable(hanging)  # the same PING still in flight: not a second one
    assert calls == [1]
    gate.set()

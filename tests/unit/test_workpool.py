"""The action pool's order: urgent work (vendor calls) before other work (settlements)."""

from __future__ import annotations

import threading

import pytest

from schedules.workpool import PriorityPool


def test_urgent_jobs_run_before_waiting_other_jobs_each_kind_in_order() -> None:
    pool = PriorityPool(1, name="test")
    gate, running = threading.Event(), threading.Event()
    order: list[str] = []

    def hold() -> None:  # holds the only thread while the others queue
        running.set()
        gate.wait(5)

    blocker = pool.submit(hold)
    assert running.wait(5)
    futures = [
        pool.submit(order.append, "later-1", urgent=False),
        pool.submit(order.append, "urgent-1"),
        pool.submit(order.append, "later-2", urgent=False),
        pool.submit(order.append, "urgent-2"),
    ]
    assert pool.waiting() == (2, 2)
    gate.set()
    blocker.result(5)
    for future in futures:
        future.result(5)
    assert order == ["urgent-1", "urgent-2", "later-1", "later-2"]


def test_a_job_that_raises_hands_its_exception_to_its_future_and_the_pool_goes_on() -> None:
    pool = PriorityPool(2)

    def boom() -> None:
        raise RuntimeError("worker bug")

    with pytest.raises(RuntimeError, match="worker bug"):
        pool.submit(boom).result(5)
    assert pool.submit(sum, [1, 2, 3], urgent=False).result(5) == 6


def test_other_work_waits_until_no_urgent_job_started_for_quiet_s() -> None:
    pool = PriorityPool(2, name="test", quiet_s=30)
    assert pool.submit(str, "called").result(5) == "called"  # a call, answered at once
    settled = threading.Event()
    pool.submit(settled.set, urgent=False)
    # Both threads are free, but a call started a moment ago: others may still be sending.
    assert not settled.wait(0.3)
    assert pool.waiting() == (0, 1)


def test_other_work_starts_once_the_calls_have_been_quiet_for_quiet_s() -> None:
    pool = PriorityPool(2, name="test", quiet_s=0.05)
    gate, running = threading.Event(), threading.Event()

    def hung_call() -> None:
        running.set()
        gate.wait(10)

    hung = pool.submit(hung_call)
    assert running.wait(5)
    # A call still running (hung) does not hold other work back once quiet_s has passed.
    assert pool.submit(sum, [2, 3], urgent=False).result(5) == 5
    assert not hung.done()
    gate.set()
    hung.result(5)
